//! Trust boundaries, tried from outside as an attacker would (issue 19): each test fails
//! without the defence it names. Other client addresses are other loopback addresses
//! (127.0.0.2, 127.0.0.3), so nothing leaves the machine.

mod common;

use std::net::TcpStream;
use std::process::Command;

use common::*;

/// Embedded mode binds loopback unless told otherwise: the dashboard's port and the
/// simulator's (which takes the key `demo`) are not reachable at another address of the
/// machine. With a bind to every interface, 127.0.0.2 would connect.
#[actix_web::test]
async fn embedded_mode_listens_on_loopback_only() {
    let data = temp_dir("bind");
    let (http, sim) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .env_clear()
        .env("TICKWIRE_PORT", http.to_string())
        .env("SERVER_PORT", sim.to_string())
        .env("SCP_DATA_DIR", &data)
        .env("SCP_ADMIN_PASSWORD", "a-long-enough-password")
        .env("SIM_TICKERS", "20")
        .env("LOG_LEVEL", "warn")
        .spawn()
        .expect("start tickwire");
    let _proc = Proc(child);
    wait_until_async("tickwire answers /stats on 127.0.0.1", || async move {
        common::try_stats(http).await.is_some()
    })
    .await;
    wait_until("the simulator listens on 127.0.0.1", || {
        TcpStream::connect(("127.0.0.1", sim)).is_ok()
    })
    .await;
    for port in [http, sim] {
        assert!(
            TcpStream::connect(("127.0.0.2", port)).is_err(),
            "port {port} answers on 127.0.0.2: embedded mode must bind loopback by default"
        );
    }
    let _ = std::fs::remove_dir_all(&data);
}
