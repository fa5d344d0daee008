//! The small part of MIME multipart (RFC 2046) that cloud-init and nodeadm read: a
//! `multipart/mixed` document of parts, each with headers and a body.

use sha2::{Digest, Sha256};

pub const SHELL_SCRIPT: &str = "text/x-shellscript; charset=\"us-ascii\"";
pub const NODE_CONFIG: &str = "application/node.eks.aws";

/// One part: its header lines as written and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Part {
    pub fn new(content_type: &str, body: &str) -> Part {
        Part {
            headers: vec![("Content-Type".to_string(), content_type.to_string())],
            body: body.to_string(),
        }
    }
}

/// Whether user data is a MIME document rather than a bare script or config, judged as
/// cloud-init and Karpenter judge it: by its first header.
pub fn is_mime(user_data: &str) -> bool {
    let start = user_data.trim_start();
    starts_with_ignore_case(start, "MIME-Version:") || starts_with_ignore_case(start, "Content-Type:")
}

/// Splits a multipart document into its parts. Line endings may be CRLF or LF.
pub fn parse(document: &str) -> Result<Vec<Part>, String> {
    let text = document.trim_start().replace("\r\n", "\n");
    let (head, body) = text
        .split_once("\n\n")
        .ok_or("the MIME document has no blank line after its headers")?;
    let headers = parse_headers(head);
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Type"))
        .map(|(_, v)| v.as_str())
        .ok_or("the MIME document has no Content-Type header")?;
    if !starts_with_ignore_case(content_type.trim(), "multipart/") {
        return Err(format!("the MIME document is {content_type:?}, not multipart"));
    }
    let boundary = boundary_of(content_type).ok_or("the multipart Content-Type has no boundary")?;
    let delimiter = format!("--{boundary}");
    let close = format!("--{boundary}--");

    let mut parts = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    let mut closed = false;
    for line in body.split('\n') {
        let trimmed = line.trim_end();
        if trimmed == close {
            if let Some(lines) = current.take() {
                parts.push(part_from_lines(&lines)?);
            }
            closed = true;
            break;
        }
        if trimmed == delimiter {
            if let Some(lines) = current.take() {
                parts.push(part_from_lines(&lines)?);
            }
            current = Some(Vec::new());
            continue;
        }
        // Lines before the first delimiter are the preamble, which readers ignore.
        if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    if !closed {
        return Err(format!(
            "the MIME document never closes its boundary {boundary:?}"
        ));
    }
    Ok(parts)
}

/// Writes parts as a multipart document. The boundary is derived from the parts' content, so
/// the same parts always give the same bytes and no body can contain the boundary by chance.
pub fn serialize(parts: &[Part]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        for (k, v) in &part.headers {
            hasher.update(k.as_bytes());
            hasher.update(v.as_bytes());
        }
        hasher.update(part.body.as_bytes());
    }
    let boundary = format!("nodewright-{}", &hex::encode(hasher.finalize())[..16]);
    let mut out = format!("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\n\n");
    for part in parts {
        out.push_str(&format!("--{boundary}\n"));
        for (k, v) in &part.headers {
            out.push_str(&format!("{k}: {v}\n"));
        }
        out.push('\n');
        out.push_str(&part.body);
        // The line break before a delimiter belongs to the delimiter.
        out.push('\n');
    }
    out.push_str(&format!("--{boundary}--\n"));
    out
}

fn part_from_lines(lines: &[&str]) -> Result<Part, String> {
    let blank = lines
        .iter()
        .position(|l| l.trim_end().is_empty())
        .ok_or("a MIME part has no blank line after its headers")?;
    let headers = parse_headers(&lines[..blank].join("\n"));
    if headers.is_empty() {
        return Err("a MIME part has no headers".to_string());
    }
    Ok(Part {
        headers,
        body: lines[blank + 1..].join("\n"),
    })
}

/// Header lines, with folded continuation lines joined to the header they continue.
fn parse_headers(block: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KARPENTER_STYLE: &str = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"//\"\r\n\r\n\
        --//\r\nContent-Type: application/node.eks.aws\r\n\r\napiVersion: node.eks.aws/v1alpha1\r\nkind: NodeConfig\r\n\r\n\
        --//\r\nContent-Type: text/x-shellscript; charset=\"us-ascii\"\r\n\r\n#!/bin/bash\r\necho hi\r\n\
        --//--\r\n";

    #[test]
    fn reads_the_parts_of_a_multipart_document_with_crlf_line_endings() {
        let parts = parse(KARPENTER_STYLE).expect("valid");
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0].headers,
            vec![("Content-Type".into(), NODE_CONFIG.into())]
        );
        assert_eq!(
            parts[0].body,
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n"
        );
        assert_eq!(parts[1].body, "#!/bin/bash\necho hi");
    }

    #[test]
    fn serialized_documents_read_back_to_the_same_parts() {
        let parts = vec![
            Part::new(SHELL_SCRIPT, "#!/bin/bash\necho one\n"),
            Part::new(NODE_CONFIG, "kind: NodeConfig"),
        ];
        let doc = serialize(&parts);
        assert_eq!(parse(&doc).expect("valid"), parts);
        assert_eq!(serialize(&parts), doc, "deterministic");
    }

    #[test]
    fn rejects_documents_that_are_not_multipart_or_never_close() {
        assert!(parse("Content-Type: text/plain\n\nhello").is_err());
        assert!(
            parse("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nX: y\n\nbody\n")
                .is_err()
        );
        assert!(parse("MIME-Version: 1.0\n").is_err());
    }

    #[test]
    fn recognises_mime_by_its_first_header() {
        assert!(is_mime("  MIME-Version: 1.0\n"));
        assert!(is_mime("content-type: multipart/mixed; boundary=x\n"));
        assert!(!is_mime("#!/bin/bash\n"));
    }
}
