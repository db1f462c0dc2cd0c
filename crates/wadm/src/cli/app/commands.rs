//! The `wadm app` subcommands: one request (or a few) each, printed as a table or as JSON.

use std::time::Duration;

use serde::Serialize;
use wadm_client::api::{DeleteResult, GetModelResponse, ManifestFormat, ModelSummary, PutResult};
use wadm_client::{Client, ClientError, Status};

use super::context::{Context, print_json};
use super::failure::Failure;
use super::placement;
use super::table::Table;
use super::target::{ManifestFile, Prepared, Target};
use super::wait;

/// `println!` that tolerates a closed stdout (e.g. `wadm app list | head -1`) instead of panicking.
macro_rules! say {
    () => { emit("\n") };
    ($($arg:tt)*) => { emit(&format!("{}\n", format_args!($($arg)*))) };
}

/// `print!` that tolerates a closed stdout.
macro_rules! say_raw {
    ($($arg:tt)*) => { emit(&format!($($arg)*)) };
}

/// Write to stdout, ignoring a closed pipe.
fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

pub async fn execute(cx: &Context, command: Prepared) -> Result<(), Failure> {
    let client = &cx.client;
    match command {
        Prepared::Plan { target, version } => return super::plan::plan(cx, target, version).await,
        Prepared::Diff { name, from, to } => {
            return super::plan::diff_versions(cx, &name, &from, &to).await;
        }
        Prepared::Promote { name } => {
            let reply = client.promote(&name).await?;
            if cx.json() {
                return print_json(&reply);
            }
            say!("{}", reply.message);
        }
        Prepared::Rollback { name, expect_revision } => {
            let reply = client.rollback(&name, expect_revision).await?;
            if cx.json() {
                return print_json(&reply);
            }
            say!("{}", reply.message);
        }
        Prepared::Put { manifest, expect_revision } => {
            let reply = put(client, &manifest, expect_revision).await?;
            if cx.json() {
                return print_json(&reply);
            }
            let stored = format!(
                "({} version{} stored, revision {})",
                reply.total_versions,
                if reply.total_versions == 1 { "" } else { "s" },
                reply.revision.map_or("?".to_string(), |r| r.to_string())
            );
            if reply.unchanged {
                say!(
                    "Unchanged: {} version {} is already stored with this content {stored}",
                    reply.name,
                    reply.current_version
                );
            } else {
                let what = if reply.result == PutResult::Created {
                    "Stored new application"
                } else {
                    "Stored"
                };
                say!("{what} {} version {} {stored}", reply.name, reply.current_version);
            }
        }
        Prepared::Get { name, version } => {
            let reply = client.get_model(&name, version.as_deref()).await?;
            let manifest = reply.manifest.clone().unwrap_or_default();
            let format = if cx.json() { ManifestFormat::Json } else { ManifestFormat::Yaml };
            match verbatim(&reply, format) {
                Some(text) => {
                    say_raw!("{text}");
                    if !text.ends_with('\n') {
                        say!();
                    }
                }
                None if cx.json() => return print_json(&manifest),
                None => say_raw!("{}", wadm_client::manifest::to_yaml(&manifest)?),
            }
            if !cx.json()
                && let Some(revision) = reply.revision
            {
                eprintln!("{name}: {}, application revision {revision}", reply.message);
            }
        }
        Prepared::List => {
            let models = client.list().await?;
            if cx.json() {
                return print_json(&models);
            }
            print_models(&models);
        }
        Prepared::Versions { name } => {
            let reply = client.versions_reply(&name).await?;
            if cx.json() {
                return print_json(&reply.versions);
            }
            let mut table = Table::new(&["VERSION", "DEPLOYED"]);
            for v in &reply.versions {
                table.row(vec![v.version.clone(), yes_no(v.deployed)]);
            }
            say_raw!("{}", table.render());
            if let Some(revision) = reply.revision {
                say!("Revision: {revision}");
            }
        }
        Prepared::Deploy { target, version, wait, expect_revision } => {
            deploy(cx, target, version, wait, expect_revision).await?
        }
        Prepared::Undeploy { name, wait: false, force } => {
            let reply = client.undeploy_with(&name, force).await?;
            if cx.json() {
                return print_json(&reply);
            }
            say!("Undeployed {name}{}", forced_note(&reply.message));
        }
        Prepared::Undeploy { name, wait: true, force } => {
            if !cx.json() {
                eprintln!("Undeploying {name}; waiting up to {:?}", cx.wait_timeout);
            }
            let on_status = progress_printer(cx, &name);
            let (reply, status) =
                client.undeploy_with_and_wait(&name, force, cx.wait_timeout, on_status).await?;
            if cx.json() {
                return print_json(&WaitReport { deploy: &reply, status: &status });
            }
            say!("Undeployed {name}: nothing of it runs any more{}", forced_note(&reply.message));
        }
        Prepared::Delete { name, version, wait, force } => {
            let watch = if wait { Some(client.watch_status(&name).await?) } else { None };
            let reply = client.delete_with(&name, version.as_deref(), force).await?;
            let removed = match watch {
                Some(watch) if reply.undeploy => {
                    if !cx.json() {
                        eprintln!(
                            "Deleted and undeployed {name}; waiting up to {:?}",
                            cx.wait_timeout
                        );
                    }
                    let on_status = progress_printer(cx, &name);
                    Some(client.wait_until_removed(&name, watch, cx.wait_timeout, on_status).await?)
                }
                _ => None,
            };
            if cx.json() {
                return match &removed {
                    Some(status) => print_json(&DeleteReport { delete: &reply, status }),
                    None => print_json(&reply),
                };
            }
            let what = match &version {
                Some(v) => format!("{name} version {v}"),
                None => name.clone(),
            };
            match reply.result {
                DeleteResult::Noop => say!("Nothing to delete: {what} does not exist"),
                _ if reply.undeploy && removed.is_some() => {
                    say!(
                        "Deleted {what} (it was deployed: undeployed it; nothing of it runs any more){}",
                        forced_note(&reply.message)
                    )
                }
                _ if reply.undeploy => say!(
                    "Deleted {what} (it was deployed: undeployed it){}",
                    forced_note(&reply.message)
                ),
                _ => say!("Deleted {what}"),
            }
        }
        Prepared::Status { name, watch: false, hosts: false } => {
            let status = client.status(&name).await?;
            if cx.json() {
                return print_json(&status);
            }
            print_status(&name, &status);
        }
        Prepared::Status { name, watch: false, hosts: true } => {
            let status = client.status(&name).await?;
            let placement = placement::placement(&client.app_hosts(&name).await?);
            if cx.json() {
                return print_json(&StatusWithHosts { status: &status, placement: &placement });
            }
            print_status(&name, &status);
            say!();
            placement::print_placement(&placement);
        }
        Prepared::Status { name, watch: true, .. } => watch_status(cx, &name).await?,
        Prepared::History { name } => {
            let history = client.history(&name).await?;
            if cx.json() {
                return print_json(&history);
            }
            let mut table = Table::new(&["AT", "ACTION", "VERSION", "ACTOR", "REASON"]);
            for entry in &history {
                table.row(vec![
                    entry.at.clone(),
                    entry.action.to_string(),
                    entry.version.clone().unwrap_or_default(),
                    entry.actor.clone(),
                    entry.reason.clone().unwrap_or_default(),
                ]);
            }
            say_raw!("{}", table.render());
        }
    }
    Ok(())
}

async fn put(
    client: &Client,
    manifest: &ManifestFile,
    expect_revision: Option<u64>,
) -> Result<wadm_client::api::PutModelResponse, ClientError> {
    let bytes = manifest.bytes.clone();
    client.put_manifest_expecting(bytes, Some(manifest.info.content_type), expect_revision).await
}

/// The document as it was put, when it is exactly the stored manifest in the wanted syntax (a
/// document without a version is not: the server wrote one in).
fn verbatim(reply: &GetModelResponse, format: ManifestFormat) -> Option<&str> {
    let submitted = reply.submitted.as_ref().filter(|s| s.format == format)?;
    let (parsed, _) = wadm_client::manifest::parse(submitted.text.as_bytes()).ok()?;
    (Some(&parsed) == reply.manifest.as_ref()).then_some(submitted.text.as_str())
}

/// `deploy`: with a file, store it first (a file equal to a stored version stores nothing and
/// deploys that version), then deploy; with `--wait`, follow the status until deployed, failed
/// or out of time. Deploying the deployed version changes nothing and says so.
async fn deploy(
    cx: &Context,
    target: Target,
    version: Option<String>,
    wait: bool,
    mut expect_revision: Option<u64>,
) -> Result<(), Failure> {
    let client = &cx.client;
    let name = target.name().to_string();
    let version = match (&target, version) {
        (_, Some(v)) => Some(v),
        (Target::Name(_), None) => None,
        (Target::File(file), None) => {
            let (version, revision) = store_for_deploy(cx, file, expect_revision).await?;
            // The put was ours: the deploy expects what it left.
            expect_revision = expect_revision.and(revision);
            Some(version)
        }
    };
    if !wait {
        let reply = client.deploy_expecting(&name, version.as_deref(), expect_revision).await?;
        if cx.json() {
            return print_json(&reply);
        }
        let deployed = reply.version.clone().or(version).unwrap_or_default();
        if reply.unchanged {
            say!("Unchanged: {name} version {deployed} is already deployed");
        } else {
            say!("Deployed {name} version {deployed}");
        }
        return Ok(());
    }
    if !cx.json() {
        let what = version.as_deref().unwrap_or("(current)");
        eprintln!("Deploying {name} version {what}; waiting up to {:?}", cx.wait_timeout);
    }
    let on_status = progress_printer(cx, &name);
    let (reply, status) = client
        .deploy_expecting_and_wait(
            &name,
            version.as_deref(),
            expect_revision,
            cx.wait_timeout,
            on_status,
        )
        .await?;
    if cx.json() {
        return print_json(&WaitReport { deploy: &reply, status: &status });
    }
    let deployed = reply.version.clone().or(version).unwrap_or_default();
    let kind = status.status.status_type;
    if reply.unchanged {
        say!("Unchanged: {name} version {deployed} is already deployed: {kind}");
    } else {
        say!("Deployed {name} version {deployed}: {kind}");
    }
    Ok(())
}

/// `status --watch`: the status at once, then again whenever it changes (a publication on the
/// status subject, or a poll every second in case one was missed), until interrupted or for
/// `--timeout`. JSON: one document per line per change.
async fn watch_status(cx: &Context, name: &str) -> Result<(), Failure> {
    let client = &cx.client;
    let mut watch = client.watch_status(name).await?;
    let mut shown: Option<Status> = None;
    let mut poll = tokio::time::interval(Duration::from_secs(1));
    let until = async {
        match cx.watch_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut watching = true;
    loop {
        let status = tokio::select! {
            _ = &mut until => return Ok(()),
            _ = &mut interrupted => return Ok(()),
            next = watch.next_status(), if watching => match next {
                Some(Ok(status)) => status,
                Some(Err(_)) => continue,
                None => { watching = false; continue }
            },
            _ = poll.tick() => match client.status(name).await {
                Ok(status) => status,
                Err(e) if e.is_connection_problem() => continue,
                Err(e) => return Err(e.into()),
            },
        };
        if shown.as_ref() == Some(&status) {
            continue;
        }
        if cx.json() {
            let line = serde_json::to_string(&status)
                .map_err(|e| Failure::Api(format!("cannot render the status as JSON: {e}")))?;
            say!("{line}");
        } else {
            if shown.is_some() {
                say!();
            }
            print_status(name, &status);
        }
        shown = Some(status);
    }
}

/// What a `--wait` prints whenever the status changes (nothing with `--output json`).
fn progress_printer<'a>(cx: &Context, name: &'a str) -> impl FnMut(&Status) + 'a {
    let mut progress = wait::Progress::default();
    let show = !cx.json();
    move |status: &Status| {
        if show {
            progress.show(name, status);
        }
    }
}

/// `status --hosts -o json`: the status and where the application runs.
#[derive(Serialize)]
struct StatusWithHosts<'a> {
    status: &'a Status,
    placement: &'a [placement::Placement],
}

/// The server's note on a forced removal (who is left waiting), if its message has one.
fn forced_note(message: &str) -> String {
    match message.find(" (forced: ") {
        Some(at) => message[at..].to_string(),
        None => String::new(),
    }
}

#[derive(Serialize)]
struct DeleteReport<'a> {
    delete: &'a wadm_client::api::DeleteModelResponse,
    status: &'a Status,
}

#[derive(Serialize)]
struct WaitReport<'a> {
    deploy: &'a wadm_client::api::DeployModelResponse,
    status: &'a Status,
}

/// Store `file` and return the version to deploy and the application's revision. The server
/// decides: a file equal (after normalising) to a stored version stores nothing and names that
/// version; other content under a stored version is refused.
async fn store_for_deploy(
    cx: &Context,
    file: &ManifestFile,
    expect_revision: Option<u64>,
) -> Result<(String, Option<u64>), Failure> {
    let reply = match put(&cx.client, file, expect_revision).await {
        Ok(reply) => reply,
        Err(ClientError::Api { message }) => {
            return Err(Failure::Api(format!("{}: wadm error: {message}", file.path)));
        }
        Err(other) => return Err(other.into()),
    };
    if !cx.json() {
        if reply.unchanged {
            eprintln!(
                "Unchanged: {} version {} is already stored with the content of {}",
                reply.name, reply.current_version, file.path
            );
        } else {
            eprintln!("Stored {} version {} from {}", reply.name, reply.current_version, file.path);
        }
    }
    Ok((reply.current_version, reply.revision))
}

fn print_models(models: &[ModelSummary]) {
    let mut table =
        Table::new(&["NAME", "DEPLOYED", "LATEST", "STATUS", "INSTANCES", "DESCRIPTION"]);
    for m in models {
        table.row(vec![
            m.name.clone(),
            m.deployed_version.clone().unwrap_or_else(|| "-".into()),
            m.version.clone(),
            m.status.to_string(),
            wait::instances_cell(wait::app_instances(&m.detailed_status)),
            m.description.clone().unwrap_or_default(),
        ]);
    }
    if table.is_empty() {
        say!("No applications");
    } else {
        say_raw!("{}", table.render());
    }
}

pub fn print_status(name: &str, status: &Status) {
    say!("{}", wait::headline(name, status));
    if status.scalers.is_empty() {
        return;
    }
    say!();
    say_raw!("{}", wait::scaler_table(status).render());
}

fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_string()
}
