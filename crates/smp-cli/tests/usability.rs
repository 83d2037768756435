//! What a new user runs into with the real `smp` binary (issue 15): output cut by a
//! closed pipe, Ctrl-C, a closed port, hints on the errors people hit most, short
//! hashes, raw requests, standard input and output as files, the `-v` levels, and
//! option values that are refused with a clear message.

mod support;

use support::sim::smp;

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_take_units_and_refuse_bad_values_clearly() {
    // A negative value reaches the parser, which says what is wrong with it.
    let run = smp(["--udp", "127.0.0.1", "--timeout", "-1", "os", "params"]).await;
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(!run.stderr.contains("unexpected argument"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("invalid value '-1' for '--timeout <DURATION>': `-1` is negative"),
        "{}",
        run.stderr
    );
    let run = smp(["--timeout", "2h", "os", "params"]).await;
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(run.stderr.contains("unknown unit `h`"), "{}", run.stderr);
    // Units, and plain seconds as before: the wait printed is the one asked for.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    for value in ["300ms", "0.3s", "0.3"] {
        let run = smp([
            "--udp", &addr, "--timeout", value, "--retries", "0", "os", "echo", "hi",
        ])
        .await;
        assert_eq!(run.status, 3, "{run:#?}");
        let waited = run
            .stderr
            .rsplit("over ")
            .next()
            .and_then(|ms| ms.strip_suffix(" ms\n"))
            .and_then(|ms| ms.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{value}: {}", run.stderr));
        assert!((300..1000).contains(&waited), "{value}: {}", run.stderr);
    }
}
