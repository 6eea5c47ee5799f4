//! The benchmark harness: `varta-bench --help`, or `ci/bench.sh`.

fn main() {
    varta_tests::bench::main();
}
