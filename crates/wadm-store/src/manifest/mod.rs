//! The versioned manifest store: per application, immutable versions in insertion order, the
//! deployed version, a deploy generation and a history, in a [`Kv`] bucket laid out by [`keys`].
//!
//! Every write is a compare-and-set on the application's index key (re-read and decide again on
//! conflict). Version data is written *before* the index names it and removed *after* it stops
//! naming it, so readers never see an index entry without its data. Versions beyond
//! `max_versions` (never the deployed one) and history beyond `max_history` are pruned, oldest
//! first. Deleting every version keeps the index as a tombstone so the history survives.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use wadm_model::{Application, Format, Limits, parse_manifest};

use crate::kv::{Kv, KvError};
use keys::{history_key, history_pattern, index_key, index_pattern, version_key};

pub mod keys;
mod types;
pub use types::*;

/// The description of the manifest bucket (every process creating it sends the same).
pub const BUCKET_DESCRIPTION: &str = "wadm: application manifests, versions and history";
/// The manifest bucket allows direct gets: the API's read-only requests fall back to them (any
/// replica answers, possibly stale) while no leader answers. Every process opening the bucket
/// passes this.
pub const BUCKET_DIRECT_GETS: crate::provision::DirectGets = crate::provision::DirectGets::On;
/// Default cap on stored versions per application.
pub const DEFAULT_MAX_VERSIONS: usize = 100;
/// Default cap on history entries kept per application.
pub const DEFAULT_MAX_HISTORY: u64 = 1000;
/// How many compare-and-set conflicts one write tolerates before giving up.
const MAX_ATTEMPTS: u32 = 200;

/// The version name that means "the current version" in deploy requests.
pub const LATEST: &str = "latest";

/// The decision of one compare-and-set round (short-lived: its size does not matter).
#[allow(clippy::large_enum_variant)]
enum Change<T> {
    /// Nothing to write; return this.
    Keep(T),
    /// Write `index`, record `history`, then remove the data of `dropped` version ids.
    Write {
        index: AppIndex,
        history: Option<(HistoryAction, Option<String>, Option<String>)>,
        dropped: Vec<String>,
        result: T,
        /// wadm's own note (a version became stable, a rollout started): the application's
        /// revision stays, so clients expecting it are not refused because of it.
        bookkeeping: bool,
    },
}

/// The versioned manifest store over a key-value bucket.
pub struct ManifestStore<K> {
    kv: K,
    max_versions: usize,
    max_history: u64,
    clock: fn() -> DateTime<Utc>,
}

impl<K: Kv> ManifestStore<K> {
    /// A store on `kv` with the default caps on versions and history entries.
    pub fn new(kv: K) -> Self {
        Self {
            kv,
            max_versions: DEFAULT_MAX_VERSIONS,
            max_history: DEFAULT_MAX_HISTORY,
            clock: Utc::now,
        }
    }

    /// Cap on versions per application (at least 2: the deployed one and the newest).
    pub fn with_max_versions(mut self, max: usize) -> Self {
        self.max_versions = max.max(2);
        self
    }

    /// Cap on history entries per application (at least 1).
    pub fn with_max_history(mut self, max: u64) -> Self {
        self.max_history = max.max(1);
        self
    }

    /// The clock stamping history entries.
    pub fn with_clock(mut self, clock: fn() -> DateTime<Utc>) -> Self {
        self.clock = clock;
        self
    }

    /// The underlying bucket.
    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// The index of an application that has at least one version.
    pub async fn index(&self, lattice: &str, app: &str) -> Result<Option<AppIndex>, ManifestError> {
        Ok(self.read_index(lattice, app).await?.map(|(i, _)| i).filter(AppIndex::has_versions))
    }

    /// Every application of a lattice that has at least one version, sorted by name.
    pub async fn list(&self, lattice: &str) -> Result<Vec<AppIndex>, ManifestError> {
        let mut apps = Vec::new();
        for (key, entry) in self.kv.scan(&index_pattern(lattice)).await? {
            let index: AppIndex = decode(&key, &entry.value)?;
            if index.has_versions() {
                apps.push(index);
            }
        }
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(apps)
    }

    /// One version (`None`: the current one). `Ok(None)` when the application or version is absent.
    pub async fn get(
        &self,
        lattice: &str,
        app: &str,
        version: Option<&str>,
    ) -> Result<Option<StoredVersion>, ManifestError> {
        Ok(self.get_with_index(lattice, app, version).await?.map(|(stored, _)| stored))
    }

    /// One version (`None`: the current one) and the index it was found through.
    pub async fn get_with_index(
        &self,
        lattice: &str,
        app: &str,
        version: Option<&str>,
    ) -> Result<Option<(StoredVersion, AppIndex)>, ManifestError> {
        let Some(index) = self.index(lattice, app).await? else { return Ok(None) };
        let wanted = version.or(index.current()).unwrap_or_default();
        let Some(id) = index.id_of(wanted) else { return Ok(None) };
        Ok(self.read_version(lattice, app, id).await?.map(|stored| (stored, index)))
    }

    /// Store a new version. The manifest must already carry `version`; that version must not be
    /// stored yet.
    pub async fn put(
        &self,
        lattice: &str,
        app: &str,
        version: &str,
        manifest: serde_json::Value,
        actor: &str,
    ) -> Result<PutOutcome, ManifestError> {
        let new =
            NewVersion { version: version.to_string(), assigned: false, manifest, submitted: None };
        self.put_version(lattice, app, new, None, |_| false, actor).await
    }

    /// Store a version unless it is already there: `same` says whether a stored version has the
    /// content of `new`. A versioned `new` whose version is stored is a no-op when `same`, else
    /// [`ManifestError::VersionExists`]. A `new` with an assigned version is a no-op when the
    /// current version, or else the deployed one, is `same`. A no-op is answered with
    /// [`PutOutcome::unchanged`] and the existing version, and writes nothing (no history).
    /// `expect`: refuse with [`ManifestError::RevisionMoved`] unless the application is at that
    /// revision (0: it does not exist).
    pub async fn put_version(
        &self,
        lattice: &str,
        app: &str,
        new: NewVersion,
        expect: Option<u64>,
        same: impl Fn(&StoredVersion) -> bool,
        actor: &str,
    ) -> Result<PutOutcome, ManifestError> {
        let NewVersion { version, assigned, manifest, submitted } = new;
        let description = manifest
            .pointer("/metadata/annotations/description")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        let id = ulid::Ulid::new().to_string();
        let data_key = version_key(lattice, app, &id);
        let mut data_written = false;
        let result = async {
            for _ in 0..MAX_ATTEMPTS {
                // Compare with the stored candidates as of one revision of the index; the write
                // below only goes ahead if the index is still at that revision.
                let read = self.read_index(lattice, app).await?.map(|(i, _)| i);
                let seen = read.as_ref().map_or(0, |i| i.revision);
                check_revision(app, expect, seen)?;
                let index = read.filter(AppIndex::has_versions);
                let candidates: Vec<(String, String)> = match &index {
                    None => Vec::new(),
                    Some(index) if !assigned => index
                        .id_of(&version)
                        .map(|id| (version.clone(), id.to_string()))
                        .into_iter()
                        .collect(),
                    Some(index) => {
                        let mut names: Vec<&str> = index.current().into_iter().collect();
                        names.extend(
                            index.deployed.as_deref().filter(|d| Some(*d) != index.current()),
                        );
                        names
                            .into_iter()
                            .filter_map(|v| {
                                index.id_of(v).map(|id| (v.to_string(), id.to_string()))
                            })
                            .collect()
                    }
                };
                for (existing, existing_id) in &candidates {
                    let stored = self.read_version(lattice, app, existing_id).await?;
                    if stored.as_ref().is_some_and(&same) {
                        let index = index.as_ref().expect("candidates come from the index");
                        return Ok(PutOutcome {
                            created: false,
                            total_versions: index.versions.len(),
                            current_version: existing.clone(),
                            pruned: Vec::new(),
                            unchanged: true,
                            revision: seen,
                        });
                    }
                }
                if !assigned && !candidates.is_empty() {
                    return Err(ManifestError::VersionExists {
                        name: app.to_string(),
                        version: version.clone(),
                    });
                }
                if !data_written {
                    let stored = StoredVersion {
                        version: version.clone(),
                        manifest: manifest.clone(),
                        submitted: submitted.clone(),
                    };
                    self.kv.put(&data_key, encode(&stored)).await?;
                    data_written = true;
                }
                let written = self
                    .append_version(lattice, app, &version, &id, &description, seen, actor)
                    .await?;
                if let Some(outcome) = written {
                    return Ok(outcome);
                }
                // The index moved since the comparison: compare again.
            }
            Err(ManifestError::Contended(app.to_string()))
        }
        .await;
        let stored_ours = matches!(&result, Ok(outcome) if !outcome.unchanged);
        if data_written && !stored_ours {
            // The index does not name our data key: remove it (best effort; an orphan is harmless).
            let _ = self.kv.delete(&data_key).await;
        }
        result
    }

    /// Name the version stored under `id` in the index, if the index is still at revision
    /// `seen` (`Ok(None)` otherwise).
    #[allow(clippy::too_many_arguments)]
    async fn append_version(
        &self,
        lattice: &str,
        app: &str,
        version: &str,
        id: &str,
        description: &Option<String>,
        seen: u64,
        actor: &str,
    ) -> Result<Option<PutOutcome>, ManifestError> {
        let max_versions = self.max_versions;
        self.modify(lattice, app, actor, |index| {
            if index.as_ref().map_or(0, |i| i.revision) != seen {
                return Ok(Change::Keep(None));
            }
            let mut index = index.unwrap_or_else(|| AppIndex::new(app));
            if index.has(version) {
                return Err(ManifestError::VersionExists {
                    name: app.to_string(),
                    version: version.to_string(),
                });
            }
            let created = index.versions.is_empty();
            index.versions.push(VersionRef {
                version: version.to_string(),
                id: id.to_string(),
                description: description.clone(),
            });
            let mut dropped = Vec::new();
            let mut pruned = Vec::new();
            while index.versions.len() > max_versions {
                let Some(pos) = index.versions[..index.versions.len() - 1]
                    .iter()
                    .position(|v| Some(&v.version) != index.deployed.as_ref())
                else {
                    break;
                };
                let old = index.versions.remove(pos);
                dropped.push(old.id);
                pruned.push(old.version);
            }
            let result = PutOutcome {
                created,
                total_versions: index.versions.len(),
                current_version: version.to_string(),
                pruned,
                unchanged: false,
                revision: index.revision + 1,
            };
            Ok(Change::Write {
                index,
                history: Some((HistoryAction::Put, Some(version.to_string()), None)),
                dropped,
                bookkeeping: false,
                result: Some(result),
            })
        })
        .await
    }

    /// Deploy a version (`None` or `"latest"`: the current one). Always bumps the generation
    /// (a re-deploy of the deployed version included); see [`Self::deploy_with`].
    pub async fn deploy(
        &self,
        lattice: &str,
        app: &str,
        version: Option<&str>,
        actor: &str,
    ) -> Result<DeployOutcome, ManifestError> {
        let options = DeployOptions { expect: None, redeploy: true };
        self.deploy_with(lattice, app, version, options, actor).await
    }

    /// Deploy a version (`None` or `"latest"`: the current one). Bumps the generation, unless
    /// that version is deployed already and `options.redeploy` is not set: then nothing changes
    /// ([`DeployOutcome::unchanged`]). `options.expect`: refuse with
    /// [`ManifestError::RevisionMoved`] unless the application is at that revision.
    pub async fn deploy_with(
        &self,
        lattice: &str,
        app: &str,
        version: Option<&str>,
        options: DeployOptions,
        actor: &str,
    ) -> Result<DeployOutcome, ManifestError> {
        self.modify(lattice, app, actor, |index| {
            let mut index = stored(index, app)?;
            check_revision(app, options.expect, index.revision)?;
            let wanted = match version {
                None | Some(LATEST) => index.current().unwrap_or_default().to_string(),
                Some(v) if index.has(v) => v.to_string(),
                Some(v) => {
                    return Err(ManifestError::VersionNotFound {
                        name: app.to_string(),
                        version: v.to_string(),
                    });
                }
            };
            if !options.redeploy && index.deployed.as_deref() == Some(wanted.as_str()) {
                return Ok(Change::Keep(DeployOutcome {
                    version: wanted,
                    generation: index.generation,
                    previous: index.deployed.clone(),
                    unchanged: true,
                    revision: index.revision,
                }));
            }
            let result = deploy_index(&mut index, &wanted);
            Ok(Change::Write {
                index,
                history: Some((HistoryAction::Deploy, Some(wanted), None)),
                dropped: Vec::new(),
                bookkeeping: false,
                result,
            })
        })
        .await
    }

    /// Undeploy; returns the version that was deployed (`None`: nothing was, nothing changed).
    pub async fn undeploy(
        &self,
        lattice: &str,
        app: &str,
        actor: &str,
    ) -> Result<Option<String>, ManifestError> {
        self.modify(lattice, app, actor, |index| {
            let mut index = stored(index, app)?;
            match index.deployed.take() {
                None => Ok(Change::Keep(None)),
                Some(was) => Ok(Change::Write {
                    index,
                    history: Some((HistoryAction::Undeploy, Some(was.clone()), None)),
                    dropped: Vec::new(),
                    bookkeeping: false,
                    result: Some(was),
                }),
            }
        })
        .await
    }

    /// Promote the current deployment past its rollouts' canary stage. `Ok(None)`: nothing is
    /// deployed; `Ok(Some(version))`: promoted (already promoted: unchanged).
    pub async fn promote(
        &self,
        lattice: &str,
        app: &str,
        actor: &str,
    ) -> Result<Option<String>, ManifestError> {
        self.modify(lattice, app, actor, |index| {
            let mut index = stored(index, app)?;
            let Some(version) = index.deployed.clone() else { return Ok(Change::Keep(None)) };
            if index.is_promoted() {
                return Ok(Change::Keep(Some(version)));
            }
            index.promoted = Some(index.generation);
            Ok(Change::Write {
                index,
                history: Some((
                    HistoryAction::Other("promote".into()),
                    Some(version.clone()),
                    None,
                )),
                dropped: Vec::new(),
                bookkeeping: false,
                result: Some(version),
            })
        })
        .await
    }

    /// Record that `version`, deployed in `generation`, became stable (the runtime saw it fully
    /// deployed). Only while that generation is the deployed one; `Ok(false)`: nothing changed
    /// (already recorded, or the deployment moved on). A history entry `stable`.
    pub async fn mark_stable(
        &self,
        lattice: &str,
        app: &str,
        version: &str,
        generation: u64,
        actor: &str,
    ) -> Result<bool, ManifestError> {
        self.modify(lattice, app, actor, |index| {
            let mut index = stored(index, app)?;
            let current =
                index.generation == generation && index.deployed.as_deref() == Some(version);
            if !current || index.stable.as_deref() == Some(version) {
                return Ok(Change::Keep(false));
            }
            index.stable_before = index.stable.replace(version.to_string());
            Ok(Change::Write {
                index,
                history: Some((HistoryAction::Other("stable".into()), Some(version.into()), None)),
                dropped: Vec::new(),
                bookkeeping: true,
                result: true,
            })
        })
        .await
    }

    /// Record in the history that the rollout of `generation` started (once per generation,
    /// only while it is the deployed one). `Ok(false)`: nothing changed.
    pub async fn note_rollout(
        &self,
        lattice: &str,
        app: &str,
        generation: u64,
        reason: &str,
        actor: &str,
    ) -> Result<bool, ManifestError> {
        self.modify(lattice, app, actor, |index| {
            let mut index = stored(index, app)?;
            let Some(version) = index.deployed.clone() else { return Ok(Change::Keep(false)) };
            if index.generation != generation || index.rollout_noted >= Some(generation) {
                return Ok(Change::Keep(false));
            }
            index.rollout_noted = Some(generation);
            let action = HistoryAction::Other("rollout".into());
            Ok(Change::Write {
                index,
                history: Some((action, Some(version), Some(reason.to_string()))),
                dropped: Vec::new(),
                bookkeeping: true,
                result: true,
            })
        })
        .await
    }

    /// Deploy `to` again because the rollout of deploy generation `from_generation` failed
    /// (`reason`). Conditional: only while `from_generation` is still the deployed one, so
    /// replicas acting on the same decision revert once, and a newer deploy is never undone.
    /// Bumps the generation like a deploy, records [`AppIndex::reverted`] and a history entry
    /// `revert`. `Ok(None)`: nothing changed.
    pub async fn revert(
        &self,
        lattice: &str,
        app: &str,
        from_generation: u64,
        to: &str,
        reason: &str,
        actor: &str,
    ) -> Result<Option<DeployOutcome>, ManifestError> {
        self.modify(lattice, app, actor, |index| {
            let mut index = stored(index, app)?;
            let Some(from) = index.deployed.clone() else { return Ok(Change::Keep(None)) };
            if index.generation != from_generation || from == to || !index.has(to) {
                return Ok(Change::Keep(None));
            }
            let result = deploy_index(&mut index, to);
            index.reverted = Some(Reverted {
                generation: index.generation,
                from: from.clone(),
                to: to.to_string(),
                reason: reason.to_string(),
            });
            let why = format!("{from} failed: {reason}");
            Ok(Change::Write {
                index,
                history: Some((HistoryAction::Other("revert".into()), Some(to.into()), Some(why))),
                dropped: Vec::new(),
                bookkeeping: false,
                result: Some(result),
            })
        })
        .await
    }

    /// Deploy the last stable version again ([`AppIndex::rollback_target`]), with a history
    /// entry `rollback`. `Ok(None)`: there is no stable version to go back to.
    /// `expect`: refuse with [`ManifestError::RevisionMoved`] unless the application is at it.
    pub async fn rollback(
        &self,
        lattice: &str,
        app: &str,
        expect: Option<u64>,
        actor: &str,
    ) -> Result<Option<DeployOutcome>, ManifestError> {
        self.modify(lattice, app, actor, |index| {
            let mut index = stored(index, app)?;
            check_revision(app, expect, index.revision)?;
            let Some(to) = index.rollback_target().map(str::to_string) else {
                return Ok(Change::Keep(None));
            };
            let result = deploy_index(&mut index, &to);
            let reason = result.previous.as_ref().map(|p| format!("from {p}"));
            Ok(Change::Write {
                index,
                history: Some((HistoryAction::Other("rollback".into()), Some(to), reason)),
                dropped: Vec::new(),
                bookkeeping: false,
                result: Some(result),
            })
        })
        .await
    }

    /// Delete one version (undeploying it if deployed) or, with `None`, the whole application.
    pub async fn delete(
        &self,
        lattice: &str,
        app: &str,
        version: Option<&str>,
        actor: &str,
    ) -> Result<DeleteOutcome, ManifestError> {
        self.modify(lattice, app, actor, |index| {
            let Some(mut index) = index.filter(AppIndex::has_versions) else {
                return Ok(Change::Keep(DeleteOutcome::Noop));
            };
            let dropped: Vec<String> = match version {
                Some(v) => match index.versions.iter().position(|r| r.version == v) {
                    None => return Ok(Change::Keep(DeleteOutcome::Noop)),
                    Some(pos) => vec![index.versions.remove(pos).id],
                },
                None => index.versions.drain(..).map(|r| r.id).collect(),
            };
            let undeployed = match (version, index.deployed.as_deref()) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(v), Some(d)) => v == d,
            } || index.versions.is_empty() && index.deployed.is_some();
            if undeployed {
                index.deployed = None;
            }
            let result =
                DeleteOutcome::Deleted { undeployed, app_removed: index.versions.is_empty() };
            Ok(Change::Write {
                index,
                history: Some((HistoryAction::Delete, version.map(str::to_string), None)),
                dropped,
                bookkeeping: false,
                result,
            })
        })
        .await
    }

    /// Add a history entry `action` (no version) by `actor` to an application's history, which
    /// is created (as a tombstone without versions, like a deleted application's) when the
    /// store has none: how wadm records what it did to an application it no longer manages.
    pub async fn note(
        &self,
        lattice: &str,
        app: &str,
        action: &str,
        actor: &str,
    ) -> Result<(), ManifestError> {
        self.note_because(lattice, app, action, None, actor).await
    }

    /// [`ManifestStore::note`] with a reason.
    pub async fn note_because(
        &self,
        lattice: &str,
        app: &str,
        action: &str,
        reason: Option<&str>,
        actor: &str,
    ) -> Result<(), ManifestError> {
        self.modify(lattice, app, actor, |index| {
            let index = index.unwrap_or_else(|| AppIndex::new(app));
            let reason = reason.map(str::to_string);
            Ok(Change::Write {
                index,
                history: Some((HistoryAction::Other(action.to_string()), None, reason)),
                dropped: Vec::new(),
                // A note of what wadm did moves no revision (a client's expected revision stays).
                bookkeeping: true,
                result: (),
            })
        })
        .await
    }

    /// The history of an application, oldest first (`None`: never stored). Survives deletion.
    pub async fn history(
        &self,
        lattice: &str,
        app: &str,
    ) -> Result<Option<Vec<HistoryEntry>>, ManifestError> {
        let Some((index, _)) = self.read_index(lattice, app).await? else { return Ok(None) };
        // One pass over the history keys (zero-padded, so key order is sequence order); keys
        // outside the index's window (a prune interrupted by a crash) are ignored.
        let window = index.history_first..index.history_next;
        let mut entries = Vec::new();
        for (key, entry) in self.kv.scan(&history_pattern(lattice, app)).await? {
            let seq = key.rsplit('.').next().and_then(|s| s.parse::<u64>().ok());
            if seq.is_some_and(|seq| window.contains(&seq)) {
                entries.push(decode::<HistoryEntry>(&key, &entry.value)?);
            }
        }
        Ok(Some(entries))
    }

    async fn read_index(
        &self,
        lattice: &str,
        app: &str,
    ) -> Result<Option<(AppIndex, u64)>, ManifestError> {
        let key = index_key(lattice, app);
        match self.kv.get(&key).await? {
            None => Ok(None),
            Some(entry) => Ok(Some((decode(&key, &entry.value)?, entry.revision))),
        }
    }

    async fn read_version(
        &self,
        lattice: &str,
        app: &str,
        id: &str,
    ) -> Result<Option<StoredVersion>, ManifestError> {
        let key = version_key(lattice, app, id);
        match self.kv.get(&key).await? {
            None => Ok(None),
            Some(entry) => Ok(Some(decode(&key, &entry.value)?)),
        }
    }

    /// Read the index, decide, compare-and-set; on conflict re-read and decide again.
    async fn modify<T>(
        &self,
        lattice: &str,
        app: &str,
        actor: &str,
        mut decide: impl FnMut(Option<AppIndex>) -> Result<Change<T>, ManifestError>,
    ) -> Result<T, ManifestError> {
        let key = index_key(lattice, app);
        for attempt in 0..MAX_ATTEMPTS {
            let current = self.read_index(lattice, app).await?;
            let revision = current.as_ref().map(|(_, r)| *r);
            let (mut index, history, dropped, result, bookkeeping) =
                match decide(current.map(|(i, _)| i))? {
                    Change::Keep(result) => return Ok(result),
                    Change::Write { index, history, dropped, result, bookkeeping } => {
                        (index, history, dropped, result, bookkeeping)
                    }
                };
            let mut history_write = None;
            let mut history_pruned = Vec::new();
            if let Some((action, version, reason)) = history {
                let seq = index.history_next;
                index.history_next += 1;
                while index.history_next - index.history_first > self.max_history {
                    history_pruned.push(index.history_first);
                    index.history_first += 1;
                }
                let entry = HistoryEntry {
                    action,
                    version,
                    actor: actor.to_string(),
                    at: rfc3339((self.clock)()),
                    reason,
                };
                history_write = Some((seq, entry));
            }
            if !bookkeeping {
                index.revision += 1;
            }
            let value = encode(&index);
            let written = match revision {
                None => self.kv.create(&key, value).await,
                Some(rev) => self.kv.update(&key, value, rev).await,
            };
            match written {
                Ok(_) => {
                    if let Some((seq, entry)) = history_write {
                        self.kv.put(&history_key(lattice, app, seq), encode(&entry)).await?;
                    }
                    for seq in history_pruned {
                        let _ = self.kv.delete(&history_key(lattice, app, seq)).await;
                    }
                    for id in dropped {
                        let _ = self.kv.delete(&version_key(lattice, app, &id)).await;
                    }
                    return Ok(result);
                }
                Err(KvError::Conflict(_)) => {
                    // Someone else wrote first: back off a little (growing, with jitter) and re-decide.
                    let jitter = u64::from(ulid::Ulid::new().random() as u8 % 4);
                    let wait = u64::from(attempt.min(20)) + jitter;
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ManifestError::Contended(app.to_string()))
    }
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("store records serialise"))
}

fn decode<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> Result<T, ManifestError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ManifestError::Corrupt { key: key.to_string(), reason: e.to_string() })
}

/// Make `version` the deployed one of `index` (a new deploy generation); what the write that
/// follows answers.
fn deploy_index(index: &mut AppIndex, version: &str) -> DeployOutcome {
    let previous = index.deployed.replace(version.to_string());
    index.generation += 1;
    DeployOutcome {
        version: version.to_string(),
        generation: index.generation,
        previous,
        unchanged: false,
        revision: index.revision + 1,
    }
}

/// Re-read a stored manifest (stored as JSON after validation).
pub fn parse_stored(manifest: &serde_json::Value) -> Result<Application, String> {
    let bytes = serde_json::to_vec(manifest).map_err(|e| e.to_string())?;
    let limits = Limits { max_bytes: bytes.len().max(1), ..Limits::default() };
    parse_manifest(&bytes, Format::Json, &limits).map(|p| p.app).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;

/// [`ManifestError::RevisionMoved`] when a revision is expected and the application is at another.
fn check_revision(app: &str, expect: Option<u64>, current: u64) -> Result<(), ManifestError> {
    match expect {
        Some(expected) if expected != current => {
            Err(ManifestError::RevisionMoved { name: app.to_string(), expected, current })
        }
        _ => Ok(()),
    }
}

/// The index of an application that has at least one version, or [`ManifestError::AppNotFound`].
fn stored(index: Option<AppIndex>, app: &str) -> Result<AppIndex, ManifestError> {
    index.filter(AppIndex::has_versions).ok_or_else(|| ManifestError::AppNotFound(app.to_string()))
}

/// A history timestamp as the wire carries it (RFC 3339, UTC, `Z`; sub-seconds only when set).
fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}
