//! The `rfpq` binary: a thin shell over the library's CLI module.

use clap::Parser;

fn main() {
    // Behave like other command-line tools when stdout is closed early (`rfpq … | head`).
    #[cfg(unix)]
    // SAFETY: called first thing in main, before the runtime or any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = rfpq::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(rfpq::cli::run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
