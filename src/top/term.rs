//! The terminal of the live view: keys without Enter and without echo while
//! it runs (termios through libc, restored on drop), the alternate screen,
//! and a wait for a key that gives up after the refresh interval.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Standard input in non-canonical mode, no echo, signals off (Ctrl-C comes
/// as a key, so the terminal is restored whatever ends the view).
pub struct Terminal {
    saved: libc::termios,
    fd: i32,
}

impl Terminal {
    /// Takes over the terminal on standard input; `None` when it is not one.
    pub fn enter() -> std::io::Result<Option<Terminal>> {
        let fd = std::io::stdin().as_raw_fd();
        // SAFETY: isatty on a descriptor this process owns.
        if unsafe { libc::isatty(fd) } != 1 {
            return Ok(None);
        }
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut raw = saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: a termios copied from the one tcgetattr gave.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The alternate screen, cursor hidden.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(b"\x1b[?1049h\x1b[?25l");
        let _ = out.flush();
        Ok(Some(Terminal { saved, fd }))
    }

    /// Waits up to `timeout` for a key; the byte read, if any.
    pub fn key(&self, timeout: Duration) -> std::io::Result<Option<u8>> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one pollfd, the count says one.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            };
        }
        if ready == 0 {
            return Ok(None);
        }
        let mut byte = 0u8;
        // SAFETY: reading one byte into a one-byte buffer.
        let n = unsafe { libc::read(self.fd, (&raw mut byte).cast(), 1) };
        // End of input (the terminal went away) reads as `q`.
        Ok(Some(if n == 1 { byte } else { b'q' }))
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(b"\x1b[?25h\x1b[?1049l");
        let _ = out.flush();
        // SAFETY: restoring the termios saved at `enter`.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved);
        }
    }
}

/// Keys that end the view: `q`, `Q`, Ctrl-C, Ctrl-D, Escape.
pub fn is_quit(key: u8) -> bool {
    matches!(key, b'q' | b'Q' | 0x03 | 0x04 | 0x1b)
}

/// Clears the screen and draws `text` from the top left.
pub fn redraw(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(b"\x1b[H\x1b[2J")?;
    // The terminal is not in output post-processing-free mode, but be explicit about line starts.
    out.write_all(text.replace('\n', "\r\n").as_bytes())?;
    out.write_all(b"\r\npress q to quit")?;
    out.flush()
}
