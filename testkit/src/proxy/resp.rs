//! Just enough RESP (2 and 3) to find where each reply in a byte stream from Redis ends.

/// The stream is not RESP: the proxy stops counting replies on that connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

/// One complete frame at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Its length in bytes.
    pub(crate) len: usize,
    /// A RESP3 push (`>`): out-of-band data, not the reply to a command.
    pub(crate) push: bool,
}

/// The first frame of `buf`, or `None` while it is incomplete.
pub(crate) fn first_frame(buf: &[u8]) -> Result<Option<Frame>, Malformed> {
    Ok(frame_end(buf, 0)?.map(|len| Frame {
        len,
        push: buf.first() == Some(&b'>'),
    }))
}

/// Where the frame starting at `at` ends, or `None` while it is incomplete.
fn frame_end(buf: &[u8], at: usize) -> Result<Option<usize>, Malformed> {
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let rest = buf.get(at + 1..).unwrap_or_default();
    let Some(line_len) = rest.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = rest.get(..line_len).unwrap_or_default();
    let after = at + 1 + line_len + 2;
    match kind {
        // Simple string, error, integer, null, boolean, double, big number: one line.
        b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => Ok(Some(after)),
        // Bulk string, bulk error, verbatim string: a length, the bytes, CRLF.
        b'$' | b'!' | b'=' => {
            let Some(len) = length(line)? else {
                return Ok(Some(after));
            };
            let end = after + len + 2;
            Ok((buf.len() >= end).then_some(end))
        }
        // Array, set, push, map, attribute: a count, then that many frames (two per entry
        // for a map or an attribute).
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Some(count) = length(line)? else {
                return Ok(Some(after));
            };
            let count = if matches!(kind, b'%' | b'|') {
                count * 2
            } else {
                count
            };
            let mut pos = after;
            for _ in 0..count {
                match frame_end(buf, pos)? {
                    Some(end) => pos = end,
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // Attributes precede the reply they describe: they end with it.
                return frame_end(buf, pos);
            }
            Ok(Some(pos))
        }
        _ => Err(Malformed),
    }
}

/// A length or count: `None` for -1 (a RESP2 null).
fn length(line: &[u8]) -> Result<Option<usize>, Malformed> {
    let text = std::str::from_utf8(line).map_err(|_| Malformed)?;
    if text == "-1" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(mut buf: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        while let Some(frame) = first_frame(buf).unwrap() {
            out.push(frame.len);
            buf = &buf[frame.len..];
        }
        out
    }

    #[test]
    fn splits_a_stream_into_whole_replies() {
        let stream = b"+OK\r\n$3\r\nfoo\r\n$-1\r\n*2\r\n:1\r\n$0\r\n\r\n*-1\r\n-ERR x\r\n";
        assert_eq!(lens(stream), vec![5, 9, 5, 14, 5, 8]);
    }

    #[test]
    fn waits_for_the_rest_of_a_reply() {
        let whole = b"*2\r\n$5\r\nhello\r\n:42\r\n";
        for cut in 0..whole.len() {
            assert_eq!(first_frame(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(first_frame(whole).unwrap().unwrap().len, whole.len());
    }

    #[test]
    fn bulk_strings_may_hold_crlf() {
        assert_eq!(lens(b"$4\r\n\r\n\r\n\r\n+OK\r\n"), vec![10, 5]);
    }

    #[test]
    fn resp3_types_and_pushes() {
        let map = b"%1\r\n+a\r\n#t\r\n";
        assert_eq!(lens(map), vec![map.len()]);
        let attributed = b"|1\r\n+k\r\n:1\r\n,1.5\r\n";
        assert_eq!(lens(attributed), vec![attributed.len()]);
        let push = first_frame(b">2\r\n+message\r\n_\r\n").unwrap().unwrap();
        assert!(push.push);
        assert_eq!(
            lens(b"=7\r\ntxt:abc\r\n(12\r\n!1\r\nx\r\n~0\r\n"),
            vec![13, 5, 7, 4]
        );
    }

    #[test]
    fn refuses_what_is_not_resp() {
        assert_eq!(first_frame(b"HTTP/1.1 200\r\n"), Err(Malformed));
        assert_eq!(first_frame(b"$x\r\n"), Err(Malformed));
    }
}
