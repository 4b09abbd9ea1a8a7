//! Code generated from `proto/servicedesk/v1`, and the one hand-written message type the
//! servers send: [`encoded::Encoded`], a message encoded once and sent to many watchers.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("servicedesk.v1");

    pub use super::servers::*;
}

/// The servers, generated apart from the messages so that the streamed events are
/// [`encoded`] types (see `build.rs`).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
mod servers {
    include!(concat!(env!("OUT_DIR"), "/servers/servicedesk.v1.rs"));
}

/// The encoded descriptors of our protos, with comments, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/servicedesk_descriptor.bin"));

/// The `google.rpc` error details the server attaches to errors, for reflection.
pub const ERROR_DETAILS_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/error_details_descriptor.bin"));

pub mod encoded {
    //! Messages encoded once and sent as they are. A watch stream sends each committed event to
    //! every watcher that wants it; converting and encoding it per watcher made the work grow
    //! with watchers times events. The servers' streams carry these instead of the generated
    //! structs: tonic writes their bytes into the response without looking inside, so the
    //! per-watcher cost is a reference count and a copy into the connection's buffer.
    //!
    //! On the wire nothing differs: a client decodes the same message it always did.

    use std::fmt;
    use std::marker::PhantomData;

    use bytes::{Buf, BufMut, Bytes, BytesMut};
    use prost::encoding::{self, DecodeContext, WireType};
    use prost::DecodeError;

    /// `M`, already encoded. Cloning it shares the bytes.
    pub struct Encoded<M> {
        bytes: Bytes,
        message: PhantomData<fn() -> M>,
    }

    /// A `servicedesk.v1.DeskEvent`, as `WatchEvents` sends it.
    pub type DeskEvent = Encoded<super::v1::DeskEvent>;
    /// A `servicedesk.v1.TicketEvent`, as `WatchTicket` sends it.
    pub type TicketEvent = Encoded<super::v1::TicketEvent>;
    /// A `servicedesk.v1.EscalationEvent`, as `WatchEscalations` sends it.
    pub type EscalationEvent = Encoded<super::v1::EscalationEvent>;

    impl<M: prost::Message> Encoded<M> {
        /// Encodes `message` once; every clone sends these bytes.
        pub fn new(message: &M) -> Self {
            Encoded {
                bytes: message.encode_to_vec().into(),
                message: PhantomData,
            }
        }
    }

    impl<M> Encoded<M> {
        /// Bytes that hold an encoded `M`, sent as they are: the caller answers for what they
        /// hold.
        pub fn from_encoded(bytes: Bytes) -> Self {
            Encoded {
                bytes,
                message: PhantomData,
            }
        }

        /// The encoded message.
        pub fn bytes(&self) -> &Bytes {
            &self.bytes
        }
    }

    impl<M> Clone for Encoded<M> {
        fn clone(&self) -> Self {
            Encoded {
                bytes: self.bytes.clone(),
                message: PhantomData,
            }
        }
    }

    impl<M> Default for Encoded<M> {
        fn default() -> Self {
            Encoded {
                bytes: Bytes::new(),
                message: PhantomData,
            }
        }
    }

    impl<M> fmt::Debug for Encoded<M> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "Encoded<{}>({} bytes)",
                std::any::type_name::<M>(),
                self.bytes.len()
            )
        }
    }

    impl<M> PartialEq for Encoded<M> {
        fn eq(&self, other: &Self) -> bool {
            self.bytes == other.bytes
        }
    }

    impl<M: Send + Sync> prost::Message for Encoded<M> {
        fn encode_raw(&self, buf: &mut impl BufMut) {
            buf.put_slice(&self.bytes);
        }

        /// Keeps each field as it came, so that decoding an `Encoded` and encoding it again
        /// gives back the same bytes. The servers never decode one; this is for completeness.
        fn merge_field(
            &mut self,
            tag: u32,
            wire_type: WireType,
            buf: &mut impl Buf,
            ctx: DecodeContext,
        ) -> Result<(), DecodeError> {
            let mut field = BytesMut::new();
            match wire_type {
                WireType::Varint => {
                    let mut value = 0;
                    encoding::uint64::merge(wire_type, &mut value, buf, ctx)?;
                    encoding::uint64::encode(tag, &value, &mut field);
                }
                WireType::SixtyFourBit => {
                    let mut value = 0;
                    encoding::fixed64::merge(wire_type, &mut value, buf, ctx)?;
                    encoding::fixed64::encode(tag, &value, &mut field);
                }
                WireType::ThirtyTwoBit => {
                    let mut value = 0;
                    encoding::fixed32::merge(wire_type, &mut value, buf, ctx)?;
                    encoding::fixed32::encode(tag, &value, &mut field);
                }
                WireType::LengthDelimited => {
                    let mut value = Vec::new();
                    encoding::bytes::merge(wire_type, &mut value, buf, ctx)?;
                    encoding::bytes::encode(tag, &value, &mut field);
                }
                WireType::StartGroup | WireType::EndGroup => {
                    #[allow(deprecated)]
                    return Err(DecodeError::new("groups are not part of proto3"));
                }
            }
            let mut bytes = BytesMut::from(std::mem::take(&mut self.bytes));
            bytes.put(field);
            self.bytes = bytes.freeze();
            Ok(())
        }

        fn encoded_len(&self) -> usize {
            self.bytes.len()
        }

        fn clear(&mut self) {
            self.bytes.clear();
        }
    }
}
