//! `cutover crd`: the generated CustomResourceDefinitions.

use std::{path::Path, process::ExitCode};

use crate::api;

/// File name a CRD is written to: `<plural>.<group>.yaml`.
pub fn file_name(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// One CRD as a YAML document.
pub fn render(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> String {
    format!("---\n{}", crate::yaml::to_string(crd))
}

/// Prints all CRDs, or writes them into `dir`.
pub fn run(dir: Option<&Path>) -> ExitCode {
    let crds = api::crds();
    match dir {
        None => {
            for crd in &crds {
                print!("{}", render(crd));
            }
            ExitCode::SUCCESS
        }
        Some(dir) => {
            for crd in &crds {
                let path = dir.join(file_name(crd));
                if let Err(e) = std::fs::write(&path, render(crd)) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
    }
}
