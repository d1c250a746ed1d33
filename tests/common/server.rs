//! A running `ingest twitter-webhook --listen` (or any long-lived command)
//! with its stderr collected, to wait on what it logs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{signal, wait_with_timeout};

/// A running `ingest twitter-webhook --listen` and everything it logged.
pub struct Server {
    pub child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(mut cmd: Command, ready: &str) -> Server {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let server = Server {
            child,
            log,
            reader: Some(reader),
        };
        assert!(
            server.wait_log(ready, Duration::from_secs(60)),
            "never logged {ready:?}:\n{}",
            server.log()
        );
        server
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn stop(mut self) -> (ExitStatus, String) {
        signal(&self.child, libc::SIGTERM);
        let status = wait_with_timeout(&mut self.child, Duration::from_secs(60));
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        (status, self.log())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
