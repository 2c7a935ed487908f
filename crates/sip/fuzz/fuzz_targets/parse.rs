//! Feeds arbitrary bytes to every parser entry point that sees network input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip::endpoint::frame;
use switchboard_sip::message::{error_response, parse_message};
use switchboard_sip::sdp;

fuzz_target!(|data: &[u8]| {
    match parse_message(data) {
        Err(e) => {
            if let Some(resp) = error_response(data, &e, "fuzz") {
                // One framed response, no line able to smuggle a header in. It
                // copies the request's headers as they came, flaws included, so
                // it need not parse (tests/robustness.rs checks when it must).
                assert_eq!(
                    switchboard_sip::endpoint::frame(&resp),
                    switchboard_sip::endpoint::Framed::Message(resp.len())
                );
                let text = String::from_utf8_lossy(&resp);
                let head = &text[..text.find("\r\n\r\n").unwrap()];
                assert!(head.starts_with("SIP/2.0 "));
                assert!(head.split("\r\n").all(|l| !l.contains(['\r', '\n'])));
                let _ = parse_message(&resp);
            }
        }
        Ok(m) => {
            assert!(parse_message(&m.to_bytes()).is_ok());
        }
    }
    let _ = frame(data);
    if let Ok(sd) = sdp::parse(data) {
        assert_eq!(sdp::parse(sd.to_string().as_bytes()).as_ref(), Ok(&sd));
        let _ = sdp::negotiate(&sd, [127, 0, 0, 1].into(), 1000, &[sdp::Codec::Pcmu]);
    }
});
