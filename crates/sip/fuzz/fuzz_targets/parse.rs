//! Feeds arbitrary bytes to every parser entry point that sees network input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_sip::endpoint::frame;
use switchboard_sip::message::{error_response, parse_message, SipMessage};
use switchboard_sip::sdp;

fuzz_target!(|data: &[u8]| {
    match parse_message(data) {
        Err(e) => {
            if let Some(resp) = error_response(data, &e, "fuzz") {
                assert!(matches!(parse_message(&resp), Ok(SipMessage::Response(_))));
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
