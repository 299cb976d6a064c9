//! Reading an AWS answer: never more than a bound, and transport failures in a few words.

use zeroize::Zeroizing;

/// The longest answer read from KMS or STS; a real one is a few kilobytes at most.
pub(crate) const MAX_ANSWER_LEN: usize = 64 * 1024;

/// Why an answer could not be read.
pub(crate) enum AnswerError {
    /// The connection failed or timed out (a few words, without the URL or any body).
    Transport(&'static str),
    /// The answer is longer than [`MAX_ANSWER_LEN`].
    TooLong,
}

/// The body of `response`, read chunk by chunk and refused past [`MAX_ANSWER_LEN`]
/// (announced or actual), so a misbehaving endpoint cannot make the process buffer an
/// unbounded answer. The copy is wiped when dropped: answers carry data keys and
/// credentials.
pub(crate) async fn read_answer(
    mut response: reqwest::Response,
) -> Result<Zeroizing<Vec<u8>>, AnswerError> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_ANSWER_LEN as u64)
    {
        return Err(AnswerError::TooLong);
    }
    let mut body = Zeroizing::new(Vec::new());
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| AnswerError::Transport(transport(&e)))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_LEN {
            return Err(AnswerError::TooLong);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport failure in a few words, without the URL or any body.
pub(crate) fn transport(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the connection failed"
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::{AnswerError, MAX_ANSWER_LEN, read_answer};

    /// Answers one HTTP request on loopback with `head` and `body`, and returns what the
    /// reader made of the answer.
    async fn read_from(head: String, body: Vec<u8>) -> Result<usize, &'static str> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await.unwrap();
            socket.write_all(head.as_bytes()).await.unwrap();
            // A reader that stops early closes the connection: later writes may fail.
            let _ = socket.write_all(&body).await;
        });
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::client::tls_config().unwrap())
            .build()
            .unwrap();
        let response = client.get(url).send().await.unwrap();
        let read = read_answer(response)
            .await
            .map(|b| b.len())
            .map_err(|e| match e {
                AnswerError::TooLong => "too long",
                AnswerError::Transport(what) => what,
            });
        server.abort();
        read
    }

    #[tokio::test]
    async fn an_answer_is_read_up_to_its_bound_and_refused_past_it() {
        let small = b"{\"KeyId\":\"k\"}".to_vec();
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", small.len());
        assert_eq!(read_from(head, small).await, Ok(13));

        // Announced as too long: refused before any of it is read.
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_ANSWER_LEN + 1
        );
        assert_eq!(read_from(head, Vec::new()).await, Err("too long"));

        // Not announced (chunked) and too long: refused once the bound is passed.
        let chunk = vec![b'x'; 16 * 1024];
        let mut body = Vec::new();
        for _ in 0..5 {
            body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            body.extend_from_slice(&chunk);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"0\r\n\r\n");
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned();
        assert_eq!(read_from(head, body).await, Err("too long"));
    }
}
