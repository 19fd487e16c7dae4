//! The store port's contract (`tests/contract/store.rs`) on the in-memory table, which the
//! simulator runs on, and on the tests' fake around it. `tests/aws.rs` runs the same clauses
//! on DynamoDB (moto), so the fake the other tests rely on cannot drift from the real table.

#[path = "contract/store.rs"]
#[macro_use]
mod store_contract;

mod memory {
    store_contract!(controller::store::memory::MemoryStore::new());
}

mod fake {
    store_contract!(controller::store::fake::FakeStore::new());
}
