//! Framing for the direct and sync protocols: one length-prefixed frame per stream.
//!
//! A frame is a 4-byte big-endian length, then that many bytes; the writer then closes its
//! side. The reader refuses a declared length above the limit before allocating, and refuses
//! bytes after the frame. A *provable* violation is returned as `Ok(Err(FrameError))` rather
//! than as an I/O error: request-response drops failed inbound reads without telling the
//! swarm which peer sent them (libp2p-request-response 0.30 only logs them at debug level),
//! and the node must know who to cut off. A stream that ends early stays an I/O error: a
//! peer that crashes mid-frame is not misbehaving.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use std::io;

const LENGTH_PREFIX_BYTES: usize = 4;

/// Why a received frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame declares {declared} bytes, above the limit of {max} bytes")]
    Oversized { declared: u64, max: usize },
    #[error("bytes follow the end of the frame")]
    TrailingBytes,
}

/// What the reader made of one stream: the payload, or the proof the peer broke the framing.
pub type Frame = Result<Vec<u8>, FrameError>;

/// A request-response codec for opaque byte messages of at most `bytes_max` bytes.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    bytes_max: usize,
}

impl FrameCodec {
    pub fn new(bytes_max: usize) -> FrameCodec {
        FrameCodec { bytes_max }
    }
}

pub async fn read_frame<T>(io: &mut T, bytes_max: usize) -> io::Result<Frame>
where
    T: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    io.read_exact(&mut prefix).await?;
    let declared = u32::from_be_bytes(prefix);
    let Some(len) = usize::try_from(declared).ok().filter(|&n| n <= bytes_max) else {
        return Ok(Err(FrameError::Oversized {
            declared: u64::from(declared),
            max: bytes_max,
        }));
    };
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await?;
    let mut probe = [0u8; 1];
    if io.read(&mut probe).await? != 0 {
        return Ok(Err(FrameError::TrailingBytes));
    }
    Ok(Ok(payload))
}

pub async fn write_frame<T>(io: &mut T, frame: Frame, bytes_max: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    // The task only ever hands `Ok` frames to the codec; an `Err` here is a local bug, and a
    // write error fails the one request instead of panicking the connection.
    let payload = frame.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            FrameError::Oversized {
                declared: payload.len() as u64,
                max: bytes_max,
            },
        )
    };
    if payload.len() > bytes_max {
        return Err(too_large());
    }
    let len = u32::try_from(payload.len()).map_err(|_| too_large())?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&payload).await?;
    io.flush().await
}

impl libp2p::request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = Frame;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.bytes_max).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.bytes_max).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        frame: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, frame, self.bytes_max).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        frame: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, frame, self.bytes_max).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    fn read(bytes: Vec<u8>, max: usize) -> io::Result<Frame> {
        futures::executor::block_on(read_frame(&mut Cursor::new(bytes), max))
    }

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let written =
            futures::executor::block_on(write_frame(&mut out, Ok(payload.to_vec()), 1024));
        assert!(written.is_ok());
        out
    }

    #[test]
    fn round_trip() {
        let bytes = framed(b"hello");
        assert_eq!(bytes.len(), LENGTH_PREFIX_BYTES + 5);
        assert_eq!(read(bytes, 16).ok(), Some(Ok(b"hello".to_vec())));
        assert_eq!(read(framed(b""), 0).ok(), Some(Ok(Vec::new())));
    }

    #[test]
    fn declared_length_above_limit_is_refused_before_reading() {
        // Declares 4 GiB - 1 but carries nothing: refused without allocating.
        let bytes = vec![0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            read(bytes, 1024).ok(),
            Some(Err(FrameError::Oversized {
                declared: u64::from(u32::MAX),
                max: 1024
            }))
        );
        assert!(matches!(
            read(framed(b"12345"), 4).ok(),
            Some(Err(FrameError::Oversized {
                declared: 5,
                max: 4
            }))
        ));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = framed(b"abc");
        bytes.push(0);
        assert_eq!(read(bytes, 16).ok(), Some(Err(FrameError::TrailingBytes)));
    }

    #[test]
    fn a_stream_cut_short_is_an_io_error_not_misbehaviour() {
        let mut bytes = framed(b"abcdef");
        bytes.truncate(6);
        assert!(read(bytes, 16).is_err());
        assert!(read(vec![0, 0], 16).is_err());
    }

    #[test]
    fn writer_refuses_oversized_and_malformed_frames() {
        let mut out = Vec::new();
        let big = futures::executor::block_on(write_frame(&mut out, Ok(vec![0; 9]), 8));
        assert!(big.is_err());
        let bad =
            futures::executor::block_on(write_frame(&mut out, Err(FrameError::TrailingBytes), 8));
        assert!(bad.is_err());
        assert!(out.is_empty());
    }
}
