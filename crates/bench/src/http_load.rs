//! A small HTTP/1.1 client on `std::net::TcpStream`, for the services under test: GETs on a
//! kept-alive connection (a body by `Content-Length`, chunked, or to the end), and a load of N
//! such clients on threads of their own, each GETting one path back to back for a fixed time.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::statistics::percentile;

/// How long a response may take to arrive before the request fails.
const RESPONSE_DEADLINE: Duration = Duration::from_secs(30);
/// The largest body read (a `/metrics` of a million targets is about 1.3 GB; the benchmark's
/// are tens of MB).
const LONGEST_BODY: usize = 1 << 31;
/// The longest status or header line read.
const LONGEST_LINE: usize = 64 * 1024;

/// A response, as read. Its `Debug` shows the body as text, for failure messages.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl Response {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (lossily).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A kept-alive connection to one server.
pub struct Connection {
    address: SocketAddr,
    reader: BufReader<TcpStream>,
    /// Whether the server said it closes the connection after the last response.
    closing: bool,
    /// Responses read on this connection.
    answered: u64,
}

impl Connection {
    /// Connects to `address`, with Nagle's algorithm off (a request is one write).
    pub fn open(address: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(RESPONSE_DEADLINE))?;
        Ok(Connection {
            address,
            reader: BufReader::with_capacity(64 * 1024, stream),
            closing: false,
            answered: 0,
        })
    }

    /// `GET path` with `headers`, and its response; the connection stays open unless the
    /// server closes it (then the next GET reconnects). A kept-alive connection that the
    /// server has closed meanwhile (hyper closes one idle for its header deadline) is opened
    /// again and the GET sent once more, as browsers and Prometheus do.
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
        if self.closing {
            *self = Connection::open(self.address)?;
        }
        match self.send(path, headers) {
            Err(error) if self.answered > 0 && is_closed(&error) => {
                *self = Connection::open(self.address)?;
                self.send(path, headers)
            }
            result => result,
        }
    }

    fn send(&mut self, path: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", self.address);
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        self.reader.get_mut().write_all(request.as_bytes())?;
        let response = read_response(&mut self.reader)?;
        self.answered += 1;
        self.closing = response
            .header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"));
        Ok(response)
    }
}

/// Whether `error` says the server had closed the connection.
fn is_closed(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// `GET path` with `headers` on a connection of its own.
pub fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
    Connection::open(address)?.get(path, headers)
}

/// Reads one response: the status line, the headers, and the body.
pub fn read_response(reader: &mut impl BufRead) -> io::Result<Response> {
    let status_line = read_line(reader)?;
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("not an HTTP/1 status line: {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("not a header: {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
    let length = response
        .header("content-length")
        .map(|value| {
            value
                .parse::<usize>()
                .map_err(|_| invalid(format!("Content-Length {value:?}")))
        })
        .transpose()?;
    response.body = match (chunked, length) {
        (true, _) => read_chunked(reader)?,
        (false, Some(length)) => read_exactly(reader, length)?,
        // Neither: the body runs to the end of the connection.
        (false, None) => {
            let mut body = Vec::new();
            reader.take(LONGEST_BODY as u64).read_to_end(&mut body)?;
            body
        }
    };
    Ok(response)
}

/// A chunked body, its trailers skipped.
fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| invalid(format!("a chunk size {line:?}")))?;
        if size == 0 {
            while !read_line(reader)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > LONGEST_BODY {
            return Err(invalid("the body is too long".into()));
        }
        body.extend(read_exactly(reader, size)?);
        if !read_line(reader)?.is_empty() {
            return Err(invalid("a chunk not followed by CRLF".into()));
        }
    }
}

/// Exactly `length` bytes.
fn read_exactly(reader: &mut impl BufRead, length: usize) -> io::Result<Vec<u8>> {
    if length > LONGEST_BODY {
        return Err(invalid(format!("a body of {length} bytes")));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(body)
}

/// One line without its CRLF; fails at the end of the connection.
fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    let read = reader
        .take(LONGEST_LINE as u64)
        .read_until(b'\n', &mut line)?;
    if read == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    if line.last() != Some(&b'\n') {
        return Err(invalid("a line too long, or cut".into()));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| invalid("a line that is not UTF-8".into()))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// What a load of clients did.
#[derive(Debug, Default, Serialize)]
pub struct LoadResult {
    /// Clients, each on a connection of its own.
    pub clients: usize,
    /// Responses received.
    pub requests: u64,
    /// Responses with status 200 whose body holds the expected text.
    pub succeeded: u64,
    /// Requests that failed (an error, another status, or a body without the text).
    pub failed: u64,
    /// What the first failure was.
    pub first_failure: Option<String>,
    /// Seconds from the clients' start to the last one's end.
    pub elapsed_s: f64,
    /// Responses per second over `elapsed_s`.
    pub requests_per_s: f64,
    /// Median time from sending a request to the end of its response, milliseconds.
    pub latency_p50_ms: f64,
    /// 99th percentile, milliseconds.
    pub latency_p99_ms: f64,
    /// Longest, milliseconds.
    pub latency_max_ms: f64,
}

/// What one client did.
#[derive(Default)]
struct ClientResult {
    succeeded: u64,
    failed: u64,
    first_failure: Option<String>,
    latencies: Vec<Duration>,
}

impl ClientResult {
    /// Counts a failure, keeping the first one's description.
    fn fail(&mut self, why: String) {
        self.failed += 1;
        self.first_failure.get_or_insert(why);
    }
}

/// `clients` clients, each on a kept-alive connection of its own, GET `path` from `address`
/// back to back for `duration`; a response succeeds if its status is 200 and its body holds
/// `expected`. The connections are open before the clock starts; `started` is called just
/// before the clients are let go, and the result is returned once the last has finished.
pub fn run(
    address: SocketAddr,
    path: &str,
    clients: usize,
    duration: Duration,
    expected: &str,
    started: impl FnOnce(),
) -> anyhow::Result<LoadResult> {
    let gate = Arc::new(Barrier::new(clients + 1));
    let mut workers = Vec::with_capacity(clients);
    for index in 0..clients {
        let connection = Connection::open(address)
            .with_context(|| format!("client {index} connecting to {address}"))?;
        let (gate, path, expected) = (Arc::clone(&gate), path.to_string(), expected.to_string());
        let worker = thread::Builder::new()
            .name(format!("http-client-{index}"))
            .spawn(move || {
                gate.wait();
                client(connection, &path, &expected, Instant::now() + duration)
            })
            .context("starting a client thread")?;
        workers.push(worker);
    }
    started();
    gate.wait();
    let begun = Instant::now();
    let mut result = LoadResult {
        clients,
        ..LoadResult::default()
    };
    let mut latencies = Vec::new();
    for worker in workers {
        let client = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))?;
        result.succeeded += client.succeeded;
        result.failed += client.failed;
        if result.first_failure.is_none() {
            result.first_failure = client.first_failure;
        }
        latencies.extend(client.latencies);
    }
    let elapsed = begun.elapsed();
    latencies.sort_unstable();
    let millis = |latency: Option<Duration>| latency.map_or(0.0, |d| d.as_secs_f64() * 1e3);
    result.requests = latencies.len() as u64;
    result.elapsed_s = elapsed.as_secs_f64();
    result.requests_per_s = result.requests as f64 / result.elapsed_s.max(f64::MIN_POSITIVE);
    result.latency_p50_ms = millis(percentile(&latencies, 50.0));
    result.latency_p99_ms = millis(percentile(&latencies, 99.0));
    result.latency_max_ms = millis(latencies.last().copied());
    Ok(result)
}

/// One client's loop, until `deadline`.
fn client(
    mut connection: Connection,
    path: &str,
    expected: &str,
    deadline: Instant,
) -> ClientResult {
    let mut result = ClientResult::default();
    while Instant::now() < deadline {
        let sent = Instant::now();
        match connection.get(path, &[]) {
            Ok(response) => {
                result.latencies.push(sent.elapsed());
                let found = response
                    .body
                    .windows(expected.len())
                    .any(|window| window == expected.as_bytes());
                if response.status == 200 && found {
                    result.succeeded += 1;
                } else {
                    let body = response.text();
                    result.fail(format!("status {}: {}", response.status, body.trim()));
                }
            }
            Err(error) => {
                result.fail(format!("GET {path}: {error}"));
                match Connection::open(connection.address) {
                    Ok(fresh) => connection = fresh,
                    Err(error) => {
                        result.fail(format!("reconnecting: {error}"));
                        return result;
                    }
                }
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn bodies_by_length_chunked_and_to_the_end() {
        let by_length = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
        let response = read_response(&mut by_length.as_bytes()).unwrap();
        assert_eq!((response.status, response.header("x-a")), (200, Some("b")));
        assert_eq!(response.body, b"hello");

        let chunked = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n\
                       4\r\nprob\r\n9;ext=1\r\ne_success\r\n0\r\nTrailer: x\r\n\r\n";
        let response = read_response(&mut chunked.as_bytes()).unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.body, b"probe_success");

        let to_the_end = "HTTP/1.0 200 OK\nServer: old\n\nall of it";
        let response = read_response(&mut to_the_end.as_bytes()).unwrap();
        assert_eq!(response.body, b"all of it");

        assert!(read_response(&mut "SSH-2.0-OpenSSH\r\n".as_bytes()).is_err());
        let cut = "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort";
        assert!(read_response(&mut cut.as_bytes()).is_err());
    }

    #[test]
    fn a_kept_alive_connection_the_server_closed_is_opened_again() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = server.local_addr().unwrap();
        // Each connection gets one answer, then is closed without a word.
        let serving = thread::spawn(move || {
            for body in ["one", "two"] {
                let (stream, _) = server.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while line != "\r\n" {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                }
                let response = format!("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{body}");
                (&stream).write_all(response.as_bytes()).unwrap();
            }
        });
        let mut connection = Connection::open(address).unwrap();
        assert_eq!(connection.get("/", &[]).unwrap().body, b"one");
        assert_eq!(connection.get("/", &[]).unwrap().body, b"two");
        serving.join().unwrap();
    }

    #[test]
    fn a_load_counts_what_succeeded_on_kept_alive_connections() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = server.local_addr().unwrap();
        // Two connections; each answers "ok" twice then "no", then "ok" until the client goes.
        let serving = thread::spawn(move || {
            let mut handlers = Vec::new();
            for _ in 0..2 {
                let (stream, _) = server.accept().unwrap();
                handlers.push(thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    for answered in 0.. {
                        let mut request = String::new();
                        while !request.ends_with("\r\n\r\n") {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return answered;
                            }
                            request.push_str(&line);
                        }
                        assert!(request.starts_with("GET /probe?x=1 HTTP/1.1\r\n"));
                        let body = if answered == 2 { "no" } else { "ok" };
                        let response =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{body}");
                        writer.write_all(response.as_bytes()).unwrap();
                    }
                    unreachable!()
                }));
            }
            handlers
                .into_iter()
                .map(|handler| handler.join().unwrap())
                .sum::<u64>()
        });
        let mut started = false;
        let duration = Duration::from_millis(200);
        let result = run(address, "/probe?x=1", 2, duration, "ok", || started = true).unwrap();
        assert!(started);
        assert_eq!(serving.join().unwrap(), result.requests);
        assert_eq!(result.failed, 2, "{result:?}");
        assert_eq!(result.succeeded + 2, result.requests);
        assert_eq!(result.first_failure.as_deref(), Some("status 200: no"));
        assert!(result.elapsed_s >= 0.2 && result.latency_max_ms > 0.0);
    }
}
