//! `nodewright convert`: Karpenter's v1alpha5 Provisioners and v1alpha1 AWSNodeTemplates, and
//! v1beta1 NodePools and EC2NodeClasses, rewritten as the v1 NodePools and EC2NodeClasses
//! nodewright reads (see [`nodewright_manifests::convert`]). The YAML goes to standard output;
//! what could not be mapped goes to standard error, one line per field.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nodewright_manifests::convert::{convert_documents, parse_documents};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to convert (YAML or JSON, any number of documents each); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut documents = Vec::new();
    for file in &args.files {
        let text = read(file)?;
        let parsed =
            parse_documents(&text).with_context(|| format!("{} is not valid YAML", file.display()))?;
        documents.extend(parsed);
    }
    let conversion = convert_documents(&documents);
    for warning in &conversion.warnings {
        eprintln!("warning: {warning}");
    }
    if conversion.documents.is_empty() {
        bail!("no Provisioner, AWSNodeTemplate, NodePool or EC2NodeClass to convert");
    }
    let yaml = conversion
        .to_yaml()
        .context("writing the converted objects as YAML")?;
    let written = io::stdout().lock().write_all(yaml.as_bytes());
    match written {
        // `nodewright convert … | head` closes the pipe early; that is not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the converted objects"),
    }
}

fn read(file: &Path) -> anyhow::Result<String> {
    if file == Path::new("-") {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}
