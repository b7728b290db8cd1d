//! The `rfpq` binary: a thin shell over the library's CLI module.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = rfpq::cli::Cli::parse();
    if let Err(e) = rfpq::cli::run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
