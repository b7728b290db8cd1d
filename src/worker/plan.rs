//! The `plan` step: loads the job's KB (pinned version, fetched once per process), parses the
//! workbook again on a blocking thread (the worker trusts nothing that was queued), builds the
//! `pipeline::Plan` and queues the batch flow; also the per-process cache of parsed plans.
//! Does not answer rows.

use super::{Shared, fail, no_plan, retry};
use crate::kb::KnowledgeBase;
use crate::pipeline::Plan;
use crate::queue::JobPhase;
use std::collections::HashMap;
use std::sync::Arc;

/// Plans kept parsed per process (the jobs a worker is on at once, with room to spare).
pub(super) const PLAN_CACHE: usize = 16;

/// A job's parsed plan with what every batch derives from it.
pub(super) struct CachedPlan {
    /// The `plan_version` it was stored under (none: not cached).
    pub(super) version: Option<String>,
    pub(super) plan: Plan,
    /// `Plan::groups`, in order.
    pub(super) groups: Vec<Vec<usize>>,
    /// For each row answered for copies of it, those copies.
    pub(super) copies: HashMap<usize, Vec<usize>>,
}

impl CachedPlan {
    pub(super) fn new(plan: Plan, version: Option<String>) -> Self {
        let mut copies: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, row) in plan.rows.iter().enumerate() {
            if let Some(s) = &row.same_as {
                copies.entry(s.index).or_default().push(i);
            }
        }
        Self {
            version,
            groups: plan.groups(),
            plan,
            copies,
        }
    }
}

impl Shared {
    /// The KB a job names, opened once per worker: the pinned snapshot version, fetched from
    /// Redis into the local cache the first time (or, for a job without a version, a path).
    pub(super) async fn kb(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<KnowledgeBase>, String> {
        let key = version.unwrap_or(name).to_string();
        let cached = || {
            self.kbs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .cloned()
        };
        if let Some(kb) = cached() {
            return Ok(kb);
        }
        let _loading = self.kb_loading.lock().await;
        if let Some(kb) = cached() {
            return Ok(kb);
        }
        let dir = match version {
            Some(v) => {
                crate::queue::materialize_kb(&self.queue, v, &crate::kb::cache_root().join("kb"))
                    .await
                    .map_err(|e| e.to_string())?
            }
            None => std::path::PathBuf::from(name),
        };
        let kb = tokio::task::spawn_blocking(move || KnowledgeBase::open(&dir))
            .await
            .map_err(|e| format!("opening the knowledge base crashed: {e}"))?
            .map_err(|e| e.to_string())?;
        kb.check_model(&self.router).map_err(|e| e.to_string())?;
        tracing::info!(
            kb = name,
            version = kb.version(),
            chunks = kb.manifest.chunks,
            "knowledge base loaded"
        );
        let kb = Arc::new(kb);
        self.kbs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, kb.clone());
        Ok(kb)
    }

    pub(super) async fn plan(&self, id: &str) -> Result<serde_json::Value, bullmq::Error> {
        if self.queue.cancel_requested(id).await.map_err(retry)? {
            self.queue
                .set_phase(id, JobPhase::Cancelled, Some("cancelled before it started"))
                .await
                .map_err(retry)?;
            return Ok(serde_json::json!({"cancelled": true}));
        }
        // Timing bookkeeping for the job report is best effort: it never fails a job.
        let _ = self
            .queue
            .mark(id, crate::queue::Milestone::PlanStarted)
            .await;
        let bytes = self.queue.file(id).await.map_err(|e| fail(e.to_string()))?;
        self.queue
            .set_phase(id, JobPhase::Running, None)
            .await
            .map_err(retry)?;
        let workbook_started = std::time::Instant::now();
        // The same check as every producer's; a refusal ends the job (unrecoverable), and the
        // processor wrapper records it as `failed` with the reason.
        let checked = crate::submit::check(id, id, bytes)
            .await
            .map_err(|e| fail(e.reason()))?;
        let questionnaire = checked.questionnaire;
        if questionnaire.source_format.is_converted() {
            // A producer queued an .xls/.ods as is: from now on the job works on the .xlsx.
            self.queue
                .replace_file(
                    id,
                    &checked.bytes,
                    questionnaire.source_format,
                    &questionnaire.warnings,
                )
                .await
                .map_err(retry)?;
        }
        let workbook_time = workbook_started.elapsed();
        let _ = self
            .queue
            .record_time(id, crate::queue::Stage::Workbook, workbook_time)
            .await;
        let plan_started = std::time::Instant::now();
        let mut plan = Plan::build(&self.router, &self.answering, &questionnaire).await;
        // The job's own write_drafts (`rfpq --write-drafts … submit`), else this worker's config.
        plan.write_drafts = self
            .queue
            .meta(id)
            .await
            .map_err(retry)?
            .get("write_drafts")
            .and_then(|w| crate::pipeline::config::WriteDrafts::parse(w));
        let _ = self
            .queue
            .record_time(id, crate::queue::Stage::Plan, plan_started.elapsed())
            .await;
        let _ = self.queue.mark(id, crate::queue::Milestone::Planned).await;
        for w in &plan.warnings {
            tracing::warn!(job = id, warning = w.as_str(), "plan");
        }
        let batches = self.queue.start_batches(id, &plan).await.map_err(retry)?;
        tracing::info!(
            job = id,
            rows = plan.rows.len(),
            questions = plan.question_count(),
            copies = plan.rows.iter().filter(|r| r.same_as.is_some()).count(),
            language = plan.language.name(),
            classify_calls = plan.calls.classify,
            batches,
            data_policy = ?self.router.config().data_policy,
            "planned"
        );
        Ok(serde_json::json!({"rows": plan.rows.len(), "batches": batches}))
    }

    /// A job's plan, parsed once per process with what every batch derives from it: a job's
    /// batches all read the same plan, and parsing a 1,000-row plan costs milliseconds. `version`
    /// is the job meta's `plan_version`; a cached plan of another version (or of a job stored
    /// without one) is read again.
    pub(super) async fn plan_of(
        &self,
        id: &str,
        version: Option<&str>,
    ) -> Result<Arc<CachedPlan>, bullmq::Error> {
        if let Some(v) = version
            && let Some(cached) = self.plans.lock().unwrap_or_else(|p| p.into_inner()).get(id)
            && cached.version.as_deref() == Some(v)
        {
            return Ok(cached.clone());
        }
        let (bytes, version) = self.queue.plan_bytes(id).await.map_err(no_plan)?;
        let plan: Plan = serde_json::from_slice(&bytes)
            .map_err(|e| fail(format!("the job's plan is damaged: {e}")))?;
        let cached = Arc::new(CachedPlan::new(plan, version));
        if cached.version.is_some() {
            let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
            if plans.len() >= PLAN_CACHE && !plans.contains_key(id) {
                plans.clear();
            }
            plans.insert(id.to_string(), cached.clone());
        }
        Ok(cached)
    }
}
