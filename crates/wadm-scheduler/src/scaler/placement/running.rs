//! The running instances of a resource, classified for the scaler placing it: whose they are
//! ([`Occupant`]), whether this scaler or a sibling of its application placed them, and for which
//! spread.

use smallvec::SmallVec;
use wadm_protocol::normalize_provider_ref;

use super::{Resource, Unit};
use crate::context::{Context, HostIx, Tag};
use crate::scaler::co_owner_key;

/// Whose an instance already running on a host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Occupant {
    /// Ours and reusable.
    Usable,
    /// Ours, but a provider with another image: using the host means stop, then start.
    Stale,
    /// Someone else's.
    Foreign,
}

/// One running instance of the resource being placed, as placement sees it.
pub(super) struct Existing<'a> {
    pub host: HostIx,
    pub count: u32,
    pub spread: Option<&'a str>,
    pub occupant: Occupant,
    /// Placed by the same scaler.
    pub mine: bool,
    /// Placed by another scaler of the same application (e.g. another scaler trait of the same
    /// workload): taken only when nothing else is left, so traits do not trade hosts.
    pub sibling: bool,
}

/// The running instances of a resource: few per resource, so inline.
pub(super) type ExistingList<'a> = SmallVec<[Existing<'a>; 4]>;

/// The running instances of `res`, classified for its placer.
pub(super) fn existing<'r>(ctx: &'r Context<'_>, res: Resource<'r>) -> ExistingList<'r> {
    let mut out = ExistingList::new();
    match res.unit {
        Unit::Component => {
            for o in res.components.unwrap_or_else(|| ctx.component_instances(res.id)) {
                let (mine, sibling) = classify(&o.tag, res.placer);
                let occupant = if o.tag.ours { Occupant::Usable } else { Occupant::Foreign };
                let (host, count, spread) = (o.host, o.instance.count, o.tag.spread);
                out.push(Existing { host, count, spread, occupant, mine, sibling });
            }
        }
        Unit::Provider => {
            for o in ctx.provider_instances(res.id) {
                let (mut mine, sibling) = classify(&o.tag, res.placer);
                let mut spread = o.tag.spread;
                // A provider shared with other applications may have been started for this
                // scaler under another application's annotations.
                if o.tag.ours
                    && !mine
                    && !sibling
                    && let Some(s) =
                        o.instance.annotations.get(&co_owner_key(res.placer.0, res.placer.1))
                {
                    (mine, spread) = (true, Some(s.as_str()));
                }
                let occupant = if !o.tag.ours {
                    Occupant::Foreign
                } else if res.in_place
                    || normalize_provider_ref(&o.instance.image_ref)
                        == normalize_provider_ref(res.image_ref)
                {
                    Occupant::Usable
                } else {
                    Occupant::Stale
                };
                out.push(Existing { host: o.host, count: 1, spread, occupant, mine, sibling });
            }
        }
    }
    out
}

/// (placed by `placer`, placed by another scaler of `placer`'s application) for an instance of
/// ours.
fn classify(tag: &Tag<'_>, placer: (&str, &str)) -> (bool, bool) {
    let same_app = tag.ours && tag.app == Some(placer.0);
    let mine = same_app && tag.scaler == Some(placer.1);
    let sibling = same_app && tag.scaler.is_some_and(|s| s != placer.1);
    (mine, sibling)
}
