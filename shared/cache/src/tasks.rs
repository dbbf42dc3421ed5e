//! Post-response work. On Lambda, work left running after the handler returns is frozen, so
//! the cache never spawns refreshes itself: it hands them to a [`TaskRunner`] supplied by the
//! caller. The Lambda glue drains a [`DeferredTasks`] after the response while an internal
//! extension holds the environment open; a long-running server uses [`SpawnTasks`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

pub trait TaskRunner: Send + Sync + 'static {
    fn submit(&self, task: Task);
}

/// Runs each task at once on the tokio runtime (servers that keep running between requests).
#[derive(Debug, Default, Clone, Copy)]
pub struct SpawnTasks;

impl TaskRunner for SpawnTasks {
    fn submit(&self, task: Task) {
        tokio::spawn(task);
    }
}

/// Queues tasks until [`run_all`](DeferredTasks::run_all) is awaited.
#[derive(Default)]
pub struct DeferredTasks {
    queue: Mutex<Vec<Task>>,
}

impl std::fmt::Debug for DeferredTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredTasks").field("pending", &self.pending()).finish()
    }
}

impl DeferredTasks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn pending(&self) -> usize {
        self.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Runs every queued task concurrently, including tasks queued while running, and returns
    /// how many ran.
    pub async fn run_all(&self) -> usize {
        let mut ran = 0;
        loop {
            let batch: Vec<Task> = match self.queue.lock() {
                Ok(mut q) => std::mem::take(&mut *q),
                Err(_) => return ran,
            };
            if batch.is_empty() {
                return ran;
            }
            ran += batch.len();
            futures::future::join_all(batch).await;
        }
    }
}

impl TaskRunner for DeferredTasks {
    fn submit(&self, task: Task) {
        if let Ok(mut q) = self.queue.lock() {
            q.push(task);
        }
    }
}

impl<T: TaskRunner> TaskRunner for std::sync::Arc<T> {
    fn submit(&self, task: Task) {
        (**self).submit(task)
    }
}
