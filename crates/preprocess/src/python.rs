//! Python preprocessing scripts (`-n script.py`), run as the seeds' tools run them.
//!
//! A small bridge (`bridge.py`, shipped in this crate and written once to a temporary
//! directory) imports the script in a persistent `python3` worker and calls
//! `image_preprocess(path, norm=...)` for each request, sending the returned array back as
//! `.npy` bytes over a pipe. Workers are pooled: a call takes an idle worker (or starts one),
//! so each thread of a parallel run ends up with its own process and Python starts once per
//! thread, not once per image. The interpreter is `$IPUKIT_PYTHON`, else `python3`.
//!
//! A worker that dies (crash, `os._exit`) is detected when its pipe closes, and the error
//! carries the last line it wrote to stderr; exceptions inside `image_preprocess` are reported
//! per image (Python's last traceback line and the script line) and the worker keeps serving.

use crate::error::{PreprocessError, Result};
use crate::sample::Sample;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The bridge's source.
pub const BRIDGE_SOURCE: &str = include_str!("bridge.py");

/// Environment variable naming the Python interpreter.
pub const PYTHON_ENV: &str = "IPUKIT_PYTHON";

/// The interpreter to use: `$IPUKIT_PYTHON`, else `python3`.
pub fn python_command() -> String {
    std::env::var(PYTHON_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

const STDERR_TAIL: usize = 20;
const MAX_PAYLOAD: u64 = 1 << 34;

/// A user's preprocessing script and its pool of worker processes. `Send + Sync`: share it
/// between threads; each concurrent call gets its own worker.
pub struct PythonScript {
    script: PathBuf,
    python: String,
    bridge: Arc<tempfile::TempDir>,
    idle: Mutex<Vec<Worker>>,
}

impl std::fmt::Debug for PythonScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonScript")
            .field("script", &self.script)
            .field("python", &self.python)
            .finish_non_exhaustive()
    }
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The worker is idle between requests; end it and reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PythonScript {
    /// Prepares the script and starts one worker, so that a missing file, a syntax error, a
    /// missing `image_preprocess` or a missing numpy is reported here, before any image.
    pub fn new(script: &Path) -> Result<PythonScript> {
        Self::with_python(script, &python_command())
    }

    /// Like [`PythonScript::new`] with an explicit interpreter.
    pub fn with_python(script: &Path, python: &str) -> Result<PythonScript> {
        let err = |message: String| PreprocessError::Python {
            script: script.to_path_buf(),
            message,
        };
        if !script.is_file() {
            return Err(err("no such file".to_string()));
        }
        let bridge = tempfile::Builder::new()
            .prefix("ipukit-bridge-")
            .tempdir()
            .map_err(|e| {
                err(format!(
                    "cannot create a temporary directory for the bridge: {e}"
                ))
            })?;
        std::fs::write(bridge.path().join("ipukit_bridge.py"), BRIDGE_SOURCE)
            .map_err(|e| err(format!("cannot write the bridge script: {e}")))?;
        let this = PythonScript {
            script: script.to_path_buf(),
            python: python.to_string(),
            bridge: Arc::new(bridge),
            idle: Mutex::new(Vec::new()),
        };
        let first = this.spawn()?;
        this.release(first);
        Ok(this)
    }

    /// The script path.
    pub fn script(&self) -> &Path {
        &self.script
    }

    fn err(&self, message: String) -> PreprocessError {
        PreprocessError::Python {
            script: self.script.clone(),
            message,
        }
    }

    fn spawn(&self) -> Result<Worker> {
        let mut child = Command::new(&self.python)
            .arg(self.bridge.path().join("ipukit_bridge.py"))
            .arg(&self.script)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                self.err(format!(
                    "cannot start `{}` ({e}); install Python 3 with numpy or set {PYTHON_ENV}",
                    self.python
                ))
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(self.err("cannot open pipes to the Python worker".to_string()));
        };
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr_tail);
        // Forward what the script prints, keeping the last lines for error messages.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                if let Ok(mut t) = tail.lock() {
                    if t.len() == STDERR_TAIL {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }
        });
        let mut worker = Worker {
            child,
            stdin,
            stdout,
            stderr_tail,
        };
        match self.receive(&mut worker)? {
            Ok(_) => Ok(worker),
            Err(message) => Err(self.err(message)),
        }
    }

    /// Reads one response: `Ok(Ok(payload))`, `Ok(Err(message))` for a reported error, or
    /// `Err` when the worker died.
    fn receive(&self, w: &mut Worker) -> Result<std::result::Result<Vec<u8>, String>> {
        let mut head = [0u8; 9];
        if w.stdout.read_exact(&mut head).is_err() {
            return Err(self.died(w));
        }
        let len = u64::from_le_bytes([
            head[1], head[2], head[3], head[4], head[5], head[6], head[7], head[8],
        ]);
        if len > MAX_PAYLOAD {
            return Err(self.err("the Python worker sent a corrupt response".to_string()));
        }
        let mut payload = vec![0u8; len as usize];
        if w.stdout.read_exact(&mut payload).is_err() {
            return Err(self.died(w));
        }
        Ok(match head[0] {
            0 => Ok(payload),
            _ => Err(String::from_utf8_lossy(&payload).into_owned()),
        })
    }

    fn died(&self, w: &mut Worker) -> PreprocessError {
        // Give the stderr thread a moment to collect the dying words.
        let mut status = None;
        for _ in 0..100 {
            if let Ok(Some(s)) = w.child.try_wait() {
                status = Some(s.to_string());
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let status = status.unwrap_or_else(|| "closed its output".to_string());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let last = w
            .stderr_tail
            .lock()
            .ok()
            .and_then(|t| t.iter().rev().find(|l| !l.trim().is_empty()).cloned())
            .map(|l| format!("; its last message: {}", l.trim()))
            .unwrap_or_default();
        self.err(format!(
            "the Python worker ({}) exited unexpectedly ({status}){last}",
            self.python
        ))
    }

    fn release(&self, w: Worker) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(w);
        }
    }

    /// Calls `image_preprocess(path, norm=norm)` and returns the array.
    pub fn run(&self, path: &Path, norm: bool) -> Result<Sample> {
        let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut w = match pooled {
            Some(w) => w,
            None => self.spawn()?,
        };
        let bytes = path_bytes(path);
        let len = u32::try_from(bytes.len()).map_err(|_| self.err("path too long".to_string()))?;
        let mut req = Vec::with_capacity(5 + bytes.len());
        req.extend_from_slice(&len.to_le_bytes());
        req.push(u8::from(norm));
        req.extend_from_slice(&bytes);
        if w.stdin
            .write_all(&req)
            .and_then(|_| w.stdin.flush())
            .is_err()
        {
            return Err(self.died(&mut w));
        }
        let reply = self.receive(&mut w)?;
        self.release(w);
        let npy = reply.map_err(|m| self.err(m))?;
        Sample::from_npy(&npy).map_err(|m| {
            self.err(format!(
                "image_preprocess({}) returned an array ipukit cannot read: {m}",
                path.display()
            ))
        })
    }

    /// Number of worker processes currently idle in the pool.
    pub fn idle_workers(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }
}

#[cfg(unix)]
fn path_bytes(p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn path_bytes(p: &Path) -> Vec<u8> {
    p.to_string_lossy().as_bytes().to_vec()
}
