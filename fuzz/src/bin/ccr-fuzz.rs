//! The binary AFL++ runs: `ccr-fuzz TARGET` feeds each input to that target. `--list` names
//! the targets; `--write-seeds TARGET DIR` writes its seeds (`cargo xtask fuzz` uses both).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--list"] => {
            for n in ccr_fuzz::names() {
                println!("{n}");
            }
        }
        ["--write-seeds", target, dir] => {
            for (i, seed) in ccr_fuzz::seeds(target).iter().enumerate() {
                let path = std::path::Path::new(dir).join(format!("seed-{i}"));
                if let Err(e) = std::fs::write(&path, seed) {
                    eprintln!("ccr-fuzz: {}: {e}", path.display());
                    std::process::exit(2);
                }
            }
        }
        [name] => {
            let Some(target) = ccr_fuzz::target(name) else {
                eprintln!(
                    "ccr-fuzz: unknown target `{name}` (one of: {})",
                    ccr_fuzz::names().join(", ")
                );
                std::process::exit(2);
            };
            afl::fuzz!(|data: &[u8]| target(data));
        }
        _ => {
            eprintln!("usage: ccr-fuzz TARGET | --list | --write-seeds TARGET DIR");
            std::process::exit(2);
        }
    }
}
