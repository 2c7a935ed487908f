//! Trunk registrations (RFC 3261 §10): REGISTER bindings that follow the trunks in the store.

use crate::engine::{lock, Engine};
use std::collections::HashMap;
use std::time::Duration;
use switchboard_domain::{Transport, Trunk, TrunkId};
use switchboard_sip::Target;
use switchboard_store::StoreError;

/// What a registration depends on: a change of any of these re-registers.
#[derive(PartialEq, Eq)]
pub(crate) struct RegistrationKey {
    host: String,
    port: u16,
    transport: Transport,
    username: String,
    password: String,
}

impl Engine {
    /// Brings the running registrations in line with the trunks in the store: trunks that ask
    /// for it (`register` with credentials) get a REGISTER, refreshed before expiry by the SIP
    /// layer (RFC 3261 §10.2.4); a trunk deleted, changed or no longer registering has its
    /// binding removed first (Expires: 0, §10.2.2) so the old and new bindings never overlap.
    /// Called at start and whenever the API changes a trunk.
    pub async fn sync_registrations(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.inner.reg_sync.lock().await;
        if *self.inner.stopping.borrow() {
            return Ok(());
        }
        let mut wanted = HashMap::new();
        for t in self.inner.store.all_trunks().await? {
            if let (true, Some(user), Some(pass)) = (t.register, &t.username, &t.password) {
                let key = RegistrationKey {
                    host: t.host.clone(),
                    port: t.port,
                    transport: t.transport,
                    username: user.clone(),
                    password: pass.clone(),
                };
                wanted.insert(t.id, (key, trunk_target(&t)));
            }
        }
        let stale: Vec<_> = {
            let mut regs = lock(&self.inner.registrations);
            let gone: Vec<TrunkId> = regs
                .iter()
                .filter(|(id, (key, _))| wanted.get(id).is_none_or(|(k, _)| k != key))
                .map(|(id, _)| *id)
                .collect();
            gone.into_iter()
                .filter_map(|id| regs.remove(&id).map(|(_, r)| (id, r)))
                .collect()
        };
        for (id, r) in stale {
            tracing::info!(trunk = %id, "removing the registration to trunk");
            r.stop().await;
        }
        let mut regs = lock(&self.inner.registrations);
        for (id, (key, target)) in wanted {
            if regs.contains_key(&id) {
                continue;
            }
            tracing::info!(trunk = %id, "registering to trunk");
            let reg = self.inner.sip.register(switchboard_sip::RegisterConfig {
                registrar: target,
                username: key.username.clone(),
                password: key.password.clone(),
                domain: None,
                expires: Duration::from_secs(3600),
            });
            regs.insert(id, (key, reg));
        }
        Ok(())
    }

    /// The state of a trunk's registration, `None` when the trunk does not register.
    pub fn registration_state(&self, trunk: TrunkId) -> Option<switchboard_sip::RegistrationState> {
        lock(&self.inner.registrations)
            .get(&trunk)
            .map(|(_, r)| r.state.borrow().clone())
    }
}

/// Where a trunk is reached, for the SIP layer.
pub(crate) fn trunk_target(trunk: &Trunk) -> Target {
    Target {
        host: trunk.host.clone(),
        port: trunk.port,
        transport: match trunk.transport {
            Transport::Udp => switchboard_sip::Transport::Udp,
            Transport::Tcp => switchboard_sip::Transport::Tcp,
        },
    }
}
