//! Call screening on outbound calls: the answering-machine detector ([`crate::amd`]) put
//! between the answered call and its conversation, and the agent's `voicemail` setting
//! carried out (issue 10).
//!
//! - `continue` (the default): the conversation starts at once; the detector listens beside it
//!   and only its verdict is kept (`answered_by`, `went_to_voicemail`).
//! - `hangup` / `leave_message`: the conversation is *held* until the verdict, so the agent
//!   never greets a machine. A person (or `unknown`) starts the conversation; a machine ends
//!   the call (`hangup`), or waits for the end of its greeting — the beep, or silence — and
//!   then hears the message, once, and the call ends (`leave_message`). A fax ends the call.
//!
//! While the conversation is held, the detector's words come from the call's own recognition
//! session, fed here with the callee's audio and speech marks (the conversation feeds it
//! afterwards). Pure state, no IO: the driver (`driver.rs`) does the talking.

use crate::amd::{AmdConfig, AmdEvent, AmdResult, AnsweredBy, Detector, LlmJudgement};
use crate::providers::SttInput;
use serde_json::Value;
use std::time::Duration;
use switchboard_domain::analysis::{Voicemail, VoicemailAction};

/// Silence that ends an utterance for the recognition session fed while holding.
const SEGMENT_END: Duration = Duration::from_millis(300);
/// A machine whose greeting never ends (music, a long menu) still gets the message after this.
const GREETING_CAP: Duration = Duration::from_secs(45);

/// What the driver must do after a screening step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Store this outcome on the call (each decision and the end of a machine's greeting).
    Report(AmdResult),
    /// Start the conversation now (a person answered, or nobody can tell).
    StartConversation,
    /// Speak the voicemail message now, then hang up.
    LeaveMessage(String),
    /// End the call with this reason (`voicemail`, `fax`).
    Hangup(&'static str),
}

pub struct Screening {
    det: Detector,
    plan: Voicemail,
    /// The conversation waits for the verdict (`hangup` / `leave_message`).
    holding: bool,
    /// Whether the message was started (it is left once).
    message_left: bool,
    speaking: bool,
    silent_since: Option<Duration>,
    /// Final transcripts so far, joined.
    transcript: String,
    judging: bool,
    machine_since: Option<Duration>,
}

impl Screening {
    pub fn new(plan: Voicemail) -> Screening {
        let holding = plan.action != VoicemailAction::Continue;
        Screening {
            det: Detector::new(AmdConfig::default()),
            plan,
            holding,
            message_left: false,
            speaking: false,
            silent_since: None,
            transcript: String::new(),
            judging: false,
            machine_since: None,
        }
    }

    /// True while the conversation must not start (nor hear the callee).
    pub fn holding(&self) -> bool {
        self.holding
    }

    /// True while the detector wants audio or words.
    pub fn listening(&self) -> bool {
        self.det.is_listening()
    }

    /// One frame of the callee's audio with its speech probability, `now` since answer.
    /// Returns what to do, and — while holding — what to send the recognition session.
    pub fn on_frame(
        &mut self,
        now: Duration,
        frame: &[i16],
        vad: f32,
    ) -> (Vec<Step>, Vec<SttInput>) {
        let mut stt = Vec::new();
        if self.holding {
            stt.push(SttInput::Audio(frame.to_vec()));
            if vad >= 0.5 {
                self.silent_since = None;
                if !self.speaking {
                    self.speaking = true;
                    stt.push(SttInput::SpeechStart);
                }
            } else if self.speaking {
                let since = *self.silent_since.get_or_insert(now);
                if now.saturating_sub(since) >= SEGMENT_END {
                    self.speaking = false;
                    self.silent_since = None;
                    stt.push(SttInput::SpeechEnd);
                }
            }
        }
        let mut steps = Vec::new();
        if self.det.is_listening() {
            if let Some(ev) = self.det.push_frame(now, frame, vad) {
                steps.extend(self.on_event(now, ev));
            }
        }
        // A greeting that never ends still gets the message.
        if let Some(t) = self.machine_since {
            if self.holding && !self.message_left && now.saturating_sub(t) >= GREETING_CAP {
                steps.extend(self.act_on_greeting_end());
            }
        }
        (steps, stt)
    }

    /// A final transcript of the callee's words.
    pub fn on_transcript(&mut self, now: Duration, text: &str) -> Vec<Step> {
        if !self.det.wants_judgement() || text.trim().is_empty() {
            return Vec::new();
        }
        if !self.transcript.is_empty() {
            self.transcript.push(' ');
        }
        self.transcript.push_str(text.trim());
        let t = self.transcript.clone();
        match self.det.on_transcript(&t) {
            Some(ev) => self.on_event(now, ev),
            None => Vec::new(),
        }
    }

    /// The messages of an LLM judgement to ask for now, if one would help (once per call: the
    /// first words are what tells a greeting from a person). Only while the conversation is
    /// held: with `continue` the verdict is only recorded, not worth a request beside the
    /// conversation's own.
    pub fn judgement_request(&mut self) -> Option<Vec<Value>> {
        if !self.holding
            || self.judging
            || self.transcript.is_empty()
            || !self.det.wants_judgement()
        {
            return None;
        }
        self.judging = true;
        Some(crate::amd::llm_messages(&self.transcript, None))
    }

    /// The LLM's judgement.
    pub fn on_llm(&mut self, now: Duration, j: LlmJudgement) -> Vec<Step> {
        match self.det.on_llm(j) {
            Some(ev) => self.on_event(now, ev),
            None => Vec::new(),
        }
    }

    /// The outcome so far (stored on the call).
    pub fn result(&self) -> Option<AmdResult> {
        self.det.result()
    }

    fn on_event(&mut self, now: Duration, ev: AmdEvent) -> Vec<Step> {
        let mut steps: Vec<Step> = self.det.result().map(Step::Report).into_iter().collect();
        let who = ev.verdict().answered_by;
        match ev {
            AmdEvent::Decided(_) => match who {
                AnsweredBy::Human | AnsweredBy::Unknown => {
                    if self.holding {
                        self.holding = false;
                        steps.push(Step::StartConversation);
                    }
                }
                AnsweredBy::Fax => {
                    if self.holding {
                        steps.push(Step::Hangup("fax"));
                    }
                }
                AnsweredBy::MachineStart => {
                    self.machine_since = Some(now);
                    if self.plan.action == VoicemailAction::Hangup {
                        steps.push(Step::Hangup("voicemail"));
                    }
                }
                AnsweredBy::MachineEndBeep | AnsweredBy::MachineEndSilence => {
                    self.machine_since = Some(now);
                    steps.extend(self.act_on_greeting_end());
                }
            },
            AmdEvent::GreetingEnded(_) => steps.extend(self.act_on_greeting_end()),
        }
        steps
    }

    /// A machine's greeting is over: the plan's action.
    fn act_on_greeting_end(&mut self) -> Vec<Step> {
        if !self.holding || self.message_left {
            return Vec::new();
        }
        match self.plan.action {
            VoicemailAction::Hangup => vec![Step::Hangup("voicemail")],
            VoicemailAction::LeaveMessage => {
                self.message_left = true;
                match self.plan.message.clone().filter(|m| !m.trim().is_empty()) {
                    Some(m) => vec![Step::LeaveMessage(m)],
                    None => vec![Step::Hangup("voicemail")],
                }
            }
            VoicemailAction::Continue => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: f64, frames: usize, start: usize) -> Vec<Vec<i16>> {
        (0..frames)
            .map(|f| {
                (0..160)
                    .map(|i| {
                        let n = (start + f) * 160 + i;
                        (8000.0 * (2.0 * std::f64::consts::PI * hz * n as f64 / 8000.0).sin())
                            as i16
                    })
                    .collect()
            })
            .collect()
    }

    /// Feeds `frames` with a VAD value; returns every step.
    fn feed(s: &mut Screening, t: &mut usize, frames: Vec<Vec<i16>>, vad: f32) -> Vec<Step> {
        let mut steps = Vec::new();
        for f in frames {
            *t += 1;
            steps.extend(s.on_frame(Duration::from_millis(*t as u64 * 20), &f, vad).0);
        }
        steps
    }

    fn voice(frames: usize) -> Vec<Vec<i16>> {
        (0..frames)
            .map(|f| {
                (0..160)
                    .map(|i| (((f * 160 + i) * 7919 % 2000) as i16) - 1000)
                    .collect()
            })
            .collect()
    }

    fn silence(frames: usize) -> Vec<Vec<i16>> {
        vec![vec![0i16; 160]; frames]
    }

    #[test]
    fn a_person_starts_the_held_conversation() {
        let mut s = Screening::new(Voicemail {
            action: VoicemailAction::LeaveMessage,
            message: Some("Please call back.".into()),
        });
        assert!(s.holding());
        let mut t = 0;
        let mut steps = feed(&mut s, &mut t, voice(30), 0.9); // "Hello?" 0.6 s
        steps.extend(feed(&mut s, &mut t, silence(60), 0.0));
        assert!(steps.contains(&Step::StartConversation), "{steps:?}");
        assert!(!s.holding());
        assert!(matches!(steps[0], Step::Report(ref r) if r.answered_by == AnsweredBy::Human));
    }

    #[test]
    fn a_machine_hears_the_message_only_after_the_beep() {
        let mut s = Screening::new(Voicemail {
            action: VoicemailAction::LeaveMessage,
            message: Some("Please call back.".into()),
        });
        let mut t = 0;
        // 7 s of greeting without a pause: machine_start (at 6.5 s: no pause to hear its
        // words in), but no message yet.
        let steps = feed(&mut s, &mut t, voice(350), 0.9);
        assert!(
            steps
                .iter()
                .any(|x| matches!(x, Step::Report(r) if r.answered_by == AnsweredBy::MachineStart)),
            "{steps:?}"
        );
        assert!(!steps.iter().any(|x| matches!(x, Step::LeaveMessage(_))));
        let mut steps = feed(&mut s, &mut t, silence(15), 0.0);
        let start = t;
        steps.extend(feed(&mut s, &mut t, tone(1000.0, 20, start), 0.0));
        assert!(
            !steps.iter().any(|x| matches!(x, Step::LeaveMessage(_))),
            "{steps:?}"
        );
        steps.extend(feed(&mut s, &mut t, silence(10), 0.0));
        assert!(
            steps.contains(&Step::LeaveMessage("Please call back.".into())),
            "{steps:?}"
        );
        // Once.
        let again = feed(&mut s, &mut t, silence(200), 0.0);
        assert!(!again.iter().any(|x| matches!(x, Step::LeaveMessage(_))));
    }

    #[test]
    fn hangup_ends_at_the_first_machine_verdict_and_continue_never_holds() {
        let mut s = Screening::new(Voicemail {
            action: VoicemailAction::Hangup,
            message: None,
        });
        let mut t = 0;
        let steps = feed(&mut s, &mut t, voice(350), 0.9);
        assert!(steps.contains(&Step::Hangup("voicemail")), "{steps:?}");

        let mut c = Screening::new(Voicemail::default());
        assert!(!c.holding());
        let mut t = 0;
        let steps = feed(&mut c, &mut t, voice(350), 0.9);
        assert!(
            steps.iter().all(|x| matches!(x, Step::Report(_))),
            "{steps:?}"
        );
        assert_eq!(
            c.result().map(|r| r.answered_by),
            Some(AnsweredBy::MachineStart)
        );
    }
}
