//! The jobs' last runs: one item per job (`pk` = `job#{name}`) in the jobs table, which also
//! holds the view-sync chunk markers.

use super::*;

#[async_trait]
impl JobLog for DynamoStore {
    async fn record_job_run(&self, run: &JobRun) -> Result<()> {
        let mut item = to_item(run)?;
        item.insert("pk".into(), s(format!("job#{}", run.job)));
        self.client.put_item().table_name(&self.tables.jobs).set_item(Some(item)).send().await.map_err(sdk_error)?;
        Ok(())
    }

    async fn job_runs(&self, jobs: &[&str]) -> Result<Vec<JobRun>> {
        // Point reads of the known jobs: the table also holds many chunk markers, never scan it.
        let keys: Vec<Item> = jobs.iter().map(|j| HashMap::from([("pk".to_string(), s(format!("job#{j}")))])).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let request = KeysAndAttributes::builder().set_keys(Some(keys)).build().map_err(sdk_error)?;
        let out =
            self.client.batch_get_item().request_items(&self.tables.jobs, request).send().await.map_err(sdk_error)?;
        let mut runs = Vec::new();
        for mut item in out.responses.and_then(|mut r| r.remove(&self.tables.jobs)).unwrap_or_default() {
            item.remove("pk");
            runs.push(from_item::<JobRun>(item)?);
        }
        runs.sort_by(|a, b| a.job.cmp(&b.job));
        Ok(runs)
    }
}
