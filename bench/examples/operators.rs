//! Runs `dropline bench operators` without the CLI:
//! `cargo run --release -p dropline-bench --example operators -- EVENTS SHIPMENTS [drop|normal] [per-event]`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut a = dropline_bench::operators::OperatorsArgs::default();
    if let Some(v) = args.next() {
        a.events = v.parse()?;
    }
    if let Some(v) = args.next() {
        a.shipments = v.parse()?;
    }
    a.drop_mode = args.next().is_some_and(|v| v == "drop");
    a.per_event = args.next().is_some_and(|v| v == "per-event");
    dropline_bench::operators::run(&a)?.print();
    Ok(())
}
