//! The Pix "copia e cola" payload (BR Code): EMV QR Code Merchant-Presented Mode with the Pix
//! merchant account template (tag 26, GUI `br.gov.bcb.pix`), closed by a CRC-16/CCITT-FALSE.

/// CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR.
pub fn crc16_ccitt_false(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// One EMV field: two-digit id, two-digit length, value (lengths count characters; values here
/// are ASCII after [`ascii`]).
fn field(id: &str, value: &str) -> String {
    format!("{id}{:02}{value}", value.len())
}

/// Upper-case ASCII letters, digits and spaces only, at most `max` characters (what wallets read).
fn ascii(text: &str, max: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' | 'Á' | 'À' | 'Â' | 'Ã' | 'Ä' => 'A',
            'é' | 'ê' | 'è' | 'É' | 'Ê' | 'È' => 'E',
            'í' | 'Í' => 'I',
            'ó' | 'ô' | 'õ' | 'Ó' | 'Ô' | 'Õ' => 'O',
            'ú' | 'ü' | 'Ú' | 'Ü' => 'U',
            'ç' | 'Ç' => 'C',
            c if c.is_ascii_alphanumeric() || c == ' ' => c.to_ascii_uppercase(),
            _ => ' ',
        })
        .collect();
    let trimmed = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    trimmed.chars().take(max).collect()
}

/// A static BR Code for `key`, optionally for a fixed amount (in centavos).
pub fn payload(key: &str, amount_cents: Option<i64>, name: &str, city: &str, txid: &str) -> String {
    let mut out = String::new();
    out.push_str(&field("00", "01"));
    out.push_str(&field("26", &(field("00", "br.gov.bcb.pix") + &field("01", key))));
    out.push_str(&field("52", "0000"));
    out.push_str(&field("53", "986"));
    if let Some(cents) = amount_cents {
        out.push_str(&field("54", &format!("{}.{:02}", cents / 100, cents % 100)));
    }
    out.push_str(&field("58", "BR"));
    let name = ascii(name, 25);
    out.push_str(&field("59", if name.is_empty() { "PIX" } else { &name }));
    let city = ascii(city, 15);
    out.push_str(&field("60", if city.is_empty() { "BRASIL" } else { &city }));
    let txid: String = txid.chars().filter(char::is_ascii_alphanumeric).take(25).collect();
    out.push_str(&field("62", &field("05", if txid.is_empty() { "***" } else { &txid })));
    out.push_str("6304");
    let crc = crc16_ccitt_false(out.as_bytes());
    out.push_str(&format!("{crc:04X}"));
    out
}

/// The payload as an SVG QR code.
pub fn qr_svg(payload: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(payload.as_bytes(), qrcode::EcLevel::M).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(220, 220)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_standard_check_value() {
        // The catalogued check value of CRC-16/CCITT-FALSE.
        assert_eq!(crc16_ccitt_false(b"123456789"), 0x29B1);
    }

    #[test]
    fn crc_matches_a_known_pix_payload() {
        // The Banco Central's example payload (Manual de Padrões para Iniciação do Pix).
        let known = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";
        let (body, crc) = known.split_at(known.len() - 4);
        assert_eq!(format!("{:04X}", crc16_ccitt_false(body.as_bytes())), crc);
    }

    #[test]
    fn payload_has_the_pix_template_amount_and_a_valid_crc() {
        let p = payload("12345678909", Some(123_456), "Ana Souza", "Feira de Santana", "abc-123");
        assert!(p.starts_with("000201"), "{p}");
        assert!(p.contains("26330014br.gov.bcb.pix011112345678909"), "{p}");
        assert!(p.contains("54071234.56"), "{p}");
        assert!(p.contains("5909ANA SOUZA"), "{p}");
        assert!(p.contains("6015FEIRA DE SANTAN"), "{p}");
        assert!(p.contains("62100506abc123"), "{p}");
        let (body, crc) = p.split_at(p.len() - 4);
        assert!(body.ends_with("6304"));
        assert_eq!(format!("{:04X}", crc16_ccitt_false(body.as_bytes())), crc);
        assert!(qr_svg(&p).is_some_and(|svg| svg.contains("<svg")));
        let open = payload("12345678909", None, "", "", "");
        assert!(!open.contains("5407") && open.contains("5903PIX") && open.contains("0503***"), "{open}");
    }
}
