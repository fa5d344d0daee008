//! `nodewright convert`: Karpenter's v1alpha5 Provisioners and v1alpha1 AWSNodeTemplates, and
//! v1beta1 NodePools and EC2NodeClasses, rewritten as the v1 NodePools and EC2NodeClasses
//! nodewright reads (see [`nodewright_manifests::convert`]). The YAML goes to standard output;
//! what could not be mapped goes to standard error, one line per field. With `-o json`, one
//! document holds both: `{"objects": [...], "warnings": [...]}`.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nodewright_manifests::convert::convert_documents;
use nodewright_manifests::yaml;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to convert (YAML or JSON, any number of documents each); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true, num_args = 1..)]
    files: Vec<PathBuf>,

    /// How to print the result: YAML manifests to apply, or JSON with the warnings in it.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Yaml)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Yaml,
    Json,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut documents = Vec::new();
    for file in &args.files {
        let text = read(file)?;
        let parsed =
            yaml::all_documents(&text).with_context(|| format!("{} is not valid YAML", file.display()))?;
        documents.extend(parsed);
    }
    let conversion = convert_documents(&documents);
    if conversion.documents.is_empty() {
        // The warnings say why each object was not converted.
        for warning in &conversion.warnings {
            eprintln!("warning: {warning}");
        }
        bail!("no Provisioner, AWSNodeTemplate, NodePool or EC2NodeClass to convert");
    }
    let text = match args.output {
        Output::Yaml => {
            for warning in &conversion.warnings {
                eprintln!("warning: {warning}");
            }
            conversion
                .to_yaml()
                .context("writing the converted objects as YAML")?
        }
        Output::Json => {
            let warnings: Vec<String> = conversion.warnings.iter().map(ToString::to_string).collect();
            let document = serde_json::json!({"objects": conversion.documents, "warnings": warnings});
            let mut text = serde_json::to_string_pretty(&document).context("writing JSON")?;
            text.push('\n');
            text
        }
    };
    let written = io::stdout().lock().write_all(text.as_bytes());
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
