//! Syntax checks for names, label keys and label values, with the API server's own messages.

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.iter().all(|&c| edge(c) || c == b'-')
        && b.first().is_some_and(|&c| edge(c))
        && b.last().is_some_and(|&c| edge(c))
}

/// Problems with `s` as a DNS-1123 subdomain (most object names); empty when valid.
pub(crate) fn dns_subdomain_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 253 {
        errors.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(is_dns_label) {
        errors.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errors
}

/// Problems with `s` as a DNS-1123 label (namespace and container names); empty when valid.
pub(crate) fn dns_label_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 63 {
        errors.push("must be no more than 63 characters".to_string());
    }
    if !is_dns_label(s) {
        errors.push(DNS1123_LABEL_MSG.to_string());
    }
    errors
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && b.iter().all(|&c| edge(c) || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(|&c| edge(c))
        && b.last().is_some_and(|&c| edge(c))
}

/// Problems with `s` as a qualified name (`prefix/name`, label and annotation keys).
pub(crate) fn qualified_name_errors(s: &str) -> Vec<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    let mut errors = Vec::new();
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errors.push("prefix part must be non-empty".to_string());
        } else {
            errors.extend(
                dns_subdomain_errors(prefix)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            errors.push("name part must be no more than 63 characters".to_string());
        }
        if !is_name_part(name) {
            errors.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    errors
}

/// Problems with `s` as a label value; empty when valid.
pub(crate) fn label_value_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 63 {
        errors.push("must be no more than 63 characters".to_string());
    }
    if !s.is_empty() && !is_name_part(s) {
        errors.push(LABEL_VALUE_MSG.to_string());
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dotted_subdomains_and_rejects_uppercase() {
        assert!(dns_subdomain_errors("ip-10-0-0-1.ec2.internal").is_empty());
        assert!(!dns_subdomain_errors("Web").is_empty());
        assert!(!dns_subdomain_errors("a..b").is_empty());
        assert!(!dns_subdomain_errors("").is_empty());
    }

    #[test]
    fn qualified_names_allow_a_subdomain_prefix() {
        assert!(qualified_name_errors("karpenter.sh/nodepool").is_empty());
        assert!(qualified_name_errors("app").is_empty());
        assert!(!qualified_name_errors("/app").is_empty());
        assert!(!qualified_name_errors("Bad_Prefix/app").is_empty());
        assert!(!qualified_name_errors("a/b/c").is_empty());
    }

    #[test]
    fn label_values_may_be_empty_but_not_start_with_a_dash() {
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors("m5.large").is_empty());
        assert!(!label_value_errors("-x").is_empty());
    }
}
