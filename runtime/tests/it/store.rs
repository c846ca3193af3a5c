//! The memory store passes the store conformance suite.

chainr_runtime::store_conformance!(async { Box::new(chainr_runtime::store::MemoryStore::new()) });

chainr_runtime::log_sink_conformance!(async { Box::new(chainr_runtime::log::MemoryLogs::new()) });

mod outbox {
    chainr_runtime::outbox_conformance!(async {
        Box::new(chainr_runtime::store::MemoryStore::new())
    });
}
