//! The `pushgate` command: serve, emulator xiaomi|huawei|honor|oppo|vivo|meizu, usersig. Thin: all
//! logic is in the library.
#![forbid(unsafe_code)]
// The calls banned in .clippy.toml (each with its reason there) are errors, not warnings.
#![deny(clippy::disallowed_methods, clippy::disallowed_types)]

/// mimalloc instead of glibc's malloc: requests allocate on an HTTP worker and free on a
/// sender's or the store's thread, which glibc paid for in `malloc_consolidate` and chunk
/// unlinking (a sixth of the gateway's CPU per routed recipient and per token report).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use pushgate::config::{Config, ProcessEnv};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pushgate",
    version,
    about = "Push gateway: live WebSocket sessions, offline push through Xiaomi MiPush"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// TOML config file (defaults are built in; PUSHGATE_* variables override both).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run a Xiaomi emulator inside the process and send to it (no Xiaomi credentials needed).
        #[arg(long)]
        sandbox: bool,
    },
    /// Run a vendor emulator.
    Emulator {
        #[command(subcommand)]
        vendor: EmulatorVendor,
    },
    /// Print a UserSig for the configured sdkappid and key.
    Usersig {
        #[arg(long)]
        identifier: String,
        /// Validity in seconds.
        #[arg(long, default_value_t = 86_400 * 180)]
        expire: u64,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum EmulatorVendor {
    /// The Xiaomi MiPush emulator.
    Xiaomi {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: std::net::SocketAddr,
    },
    /// The Huawei Push Kit emulator (token endpoint and send API on one listener).
    Huawei {
        #[arg(long, default_value = "127.0.0.1:9091")]
        listen: std::net::SocketAddr,
        /// Accept any client id with any non-empty secret (no /_emulator/apps setup).
        #[arg(long)]
        permissive: bool,
    },
    /// The Honor Push emulator (token endpoint and send API on one listener).
    Honor {
        #[arg(long, default_value = "127.0.0.1:9092")]
        listen: std::net::SocketAddr,
        /// Accept any client id with any non-empty secret (no /_emulator/apps setup).
        #[arg(long)]
        permissive: bool,
    },
    /// The Meizu Flyme Push emulator.
    Meizu {
        #[arg(long, default_value = "127.0.0.1:9093")]
        listen: std::net::SocketAddr,
        /// Accept any appId without checking signatures (no /_emulator/apps setup).
        #[arg(long)]
        permissive: bool,
    },
    /// The OPPO Push emulator (auth and send API on one listener).
    Oppo {
        #[arg(long, default_value = "127.0.0.1:9094")]
        listen: std::net::SocketAddr,
        /// Accept any app key with any signature (no /_emulator/apps setup).
        #[arg(long)]
        permissive: bool,
    },
    /// The vivo Push emulator (auth and send API on one listener).
    Vivo {
        #[arg(long, default_value = "127.0.0.1:9095")]
        listen: std::net::SocketAddr,
        /// Accept any app id and key with any signature (no /_emulator/apps setup).
        #[arg(long)]
        permissive: bool,
    },
    /// The Firebase Cloud Messaging (HTTP v1 + OAuth token endpoint) emulator, h2c and HTTP/1.1.
    /// A test-only service account is at GET /_emulator/sample-account.
    Fcm {
        #[arg(long, default_value = "127.0.0.1:9091")]
        listen: std::net::SocketAddr,
    },
    /// The APNs emulator, HTTP/2 without TLS. A test-only .p8 key is at GET /_emulator/sample-key.
    Apns {
        #[arg(long, default_value = "127.0.0.1:9092")]
        listen: std::net::SocketAddr,
    },
}

/// Runs a standalone emulator until SIGTERM or ctrl-c.
fn run_emulator(run: impl std::future::Future<Output = std::io::Result<()>>) -> ExitCode {
    pushgate::telemetry::init(pushgate::config::LogFormat::Human, "info");
    let result = tokio::runtime::Runtime::new().and_then(|rt| rt.block_on(run));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// An emulator's default (strict) configuration, or its `--permissive` one.
fn strict_or_permissive<C: Default>(permissive: bool, permissive_config: fn() -> C) -> C {
    if permissive {
        permissive_config()
    } else {
        C::default()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, sandbox } => {
            let cfg = match Config::load(config.as_deref(), &ProcessEnv) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("pushgate: {e}");
                    return ExitCode::from(2);
                }
            };
            pushgate::telemetry::init(cfg.log_format, &cfg.log_level);
            let sys = actix_rt::System::new();
            let result = sys.block_on(async move {
                if sandbox {
                    pushgate::sandbox::run(cfg).await
                } else {
                    pushgate::server::run(cfg).await
                }
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("pushgate: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Emulator {
            vendor: EmulatorVendor::Xiaomi { listen },
        } => run_emulator(pushgate::providers::xiaomi::emulator::run_standalone(
            listen,
            Default::default(),
        )),
        Command::Emulator {
            vendor: EmulatorVendor::Huawei { listen, permissive },
        } => {
            use pushgate::providers::huawei::emulator::{run_standalone, EmulatorConfig};
            run_emulator(run_standalone(
                listen,
                strict_or_permissive(permissive, EmulatorConfig::permissive),
            ))
        }
        Command::Emulator {
            vendor: EmulatorVendor::Honor { listen, permissive },
        } => {
            use pushgate::providers::honor::emulator::{run_standalone, EmulatorConfig};
            run_emulator(run_standalone(
                listen,
                strict_or_permissive(permissive, EmulatorConfig::permissive),
            ))
        }
        Command::Emulator {
            vendor: EmulatorVendor::Oppo { listen, permissive },
        } => {
            use pushgate::providers::oppo::emulator::{run_standalone, EmulatorConfig};
            run_emulator(run_standalone(
                listen,
                strict_or_permissive(permissive, EmulatorConfig::permissive),
            ))
        }
        Command::Emulator {
            vendor: EmulatorVendor::Vivo { listen, permissive },
        } => {
            use pushgate::providers::vivo::emulator::{run_standalone, EmulatorConfig};
            run_emulator(run_standalone(
                listen,
                strict_or_permissive(permissive, EmulatorConfig::permissive),
            ))
        }
        Command::Emulator {
            vendor: EmulatorVendor::Meizu { listen, permissive },
        } => {
            use pushgate::providers::meizu::emulator::{run_standalone, EmulatorConfig};
            run_emulator(run_standalone(
                listen,
                strict_or_permissive(permissive, EmulatorConfig::permissive),
            ))
        }
        Command::Emulator {
            vendor: EmulatorVendor::Fcm { listen },
        } => {
            use pushgate::providers::fcm::emulator::{run_standalone, EmulatorConfig};
            let config = EmulatorConfig {
                sample_project: Some("pushgate-sandbox".into()),
                ..Default::default()
            };
            run_emulator(run_standalone(listen, config))
        }
        Command::Emulator {
            vendor: EmulatorVendor::Apns { listen },
        } => {
            use pushgate::providers::apns::emulator::{run_standalone, EmulatorConfig};
            let config = EmulatorConfig {
                sample_key: true,
                ..Default::default()
            };
            run_emulator(run_standalone(listen, config))
        }
        Command::Usersig {
            identifier,
            expire,
            config,
        } => {
            let cfg = match Config::load(config.as_deref(), &ProcessEnv) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("pushgate: {e}");
                    return ExitCode::from(2);
                }
            };
            let Some(key) = cfg.secret_key.clone() else {
                eprintln!("pushgate: set PUSHGATE_SECRET_KEY (or secret_key in the config) first");
                return ExitCode::from(2);
            };
            if cfg.sdkappid == 0 {
                eprintln!("pushgate: set PUSHGATE_SDKAPPID (or sdkappid in the config) first");
                return ExitCode::from(2);
            }
            let key = pushgate::usersig::UserSigKey::new(cfg.sdkappid, key);
            println!("{}", key.generate(&identifier, expire));
            ExitCode::SUCCESS
        }
    }
}
