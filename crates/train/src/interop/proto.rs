//! The few protocol-buffer messages an ONNX file is made of, written by hand: a message is a
//! list of fields, each a tag (field number and wire type) and a value (a varint, four bytes, or
//! a length and bytes). The field numbers are `onnx.proto`'s.

/// A message being written.
#[derive(Debug, Default, Clone)]
pub struct Message(Vec<u8>);

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

impl Message {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    fn tag(&mut self, field: u32, wire: u8) {
        varint(&mut self.0, u64::from(field) << 3 | u64::from(wire));
    }

    /// An integer field (`int32`, `int64`, an enum).
    pub fn int(mut self, field: u32, value: i64) -> Self {
        self.tag(field, 0);
        varint(&mut self.0, value as u64);
        self
    }

    /// A `float` field.
    pub fn float(mut self, field: u32, value: f32) -> Self {
        self.tag(field, 5);
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A `bytes` or `string` field.
    pub fn bytes(mut self, field: u32, value: &[u8]) -> Self {
        self.tag(field, 2);
        varint(&mut self.0, value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }

    /// A `string` field.
    pub fn string(self, field: u32, value: &str) -> Self {
        self.bytes(field, value.as_bytes())
    }

    /// A field holding another message.
    pub fn message(self, field: u32, value: &Message) -> Self {
        self.bytes(field, &value.0)
    }

    /// The encoded message.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodings from the protocol-buffer documentation's examples.
    #[test]
    fn fields_encode_as_the_wire_format_says() {
        assert_eq!(Message::new().int(1, 150).into_bytes(), [0x08, 0x96, 0x01]);
        assert_eq!(
            Message::new().string(2, "testing").into_bytes(),
            [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']
        );
        let inner = Message::new().int(1, 150);
        assert_eq!(
            Message::new().message(3, &inner).into_bytes(),
            [0x1a, 0x03, 0x08, 0x96, 0x01]
        );
        assert_eq!(
            Message::new().float(2, 1.0).into_bytes(),
            [0x15, 0x00, 0x00, 0x80, 0x3f]
        );
        // Negative integers take ten bytes, as int64 in two's complement.
        assert_eq!(Message::new().int(1, -1).into_bytes().len(), 11);
    }
}
