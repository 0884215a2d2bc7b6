# ccr-sim, the simulator, in its madsim flavour: one image that runs scenarios and sweep shards
# anywhere a container runs (a CI matrix, a Kubernetes Indexed Job, a laptop).
#
#   docker build -t ccr-sim .
#   docker run --rm ccr-sim                                   # lists the built-in scenarios
#   docker run --rm -v "$PWD/out:/out" ccr-sim sweep --seeds 0..1000 --shard 0/4 --json --report /out

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
# The simulator only exists with `--cfg madsim`: madsim replaces tokio, the clock and randomness.
ENV RUSTFLAGS="--cfg madsim"
RUN cargo build --release --locked -p ccr-sim \
    && install -m 0755 target/release/ccr-sim /usr/local/bin/ccr-sim

FROM debian:bookworm-slim
COPY --from=build /usr/local/bin/ccr-sim /usr/local/bin/ccr-sim
# The scenario library rides along so `run /scenarios/NAME.toml` works without a checkout.
COPY scenarios /scenarios
RUN useradd --system --uid 10001 --create-home ccr
USER 10001
WORKDIR /home/ccr
ENTRYPOINT ["ccr-sim"]
CMD ["list"]
