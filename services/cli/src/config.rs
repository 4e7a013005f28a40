//! Process-wide settings shared by every binary (`wfl up`, `wfl-gateway`, `wfl-ledger`,
//! `wfl-projector`): the log format and the TOML config file (`--config`), whose keys are the
//! long flags and whose values become their `WFL_*` variables.

use std::io::IsTerminal;

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`), for log shippers.
    Json,
}

/// The logging flags of a server binary.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log format on stderr: text or json (one JSON object per line). Verbosity: RUST_LOG
    /// (default info).
    #[arg(long, env = "WFL_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// A TOML file of settings: its keys are this command's long flags (`grpc-addr =
    /// "127.0.0.1:50051"`); the command line and WFL_* variables take precedence over it.
    #[arg(long, env = "WFL_CONFIG")]
    pub config: Option<std::path::PathBuf>,
}

/// Installs the process's log subscriber (stderr; `RUST_LOG` filters, default `info`). A second
/// call does nothing.
pub fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // Colours only on a terminal: redirected logs stay plain text.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// The environment variable naming a config file (same as `--config`).
pub const CONFIG_ENV: &str = "WFL_CONFIG";

/// Applies a TOML config file to a server command before clap parses it: the file named by
/// `--config FILE` (or `WFL_CONFIG`) holds `key = value` lines whose keys are the command's long
/// flags (`grpc-addr = "0.0.0.0:50051"`, `grpc_addr` works too). Each value becomes the flag's
/// `WFL_*` variable unless the environment already sets it, so the precedence is: command line,
/// environment, config file, built-in default.
///
/// # Errors
/// When the file cannot be read or parsed, or names a key that is not a flag of `command` (the
/// error names the key and the file), or a value is not a string, number or boolean.
pub fn load_config_file(command: &clap::Command) -> anyhow::Result<()> {
    let Some(path) = config_path() else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("config {}: cannot read: {e}", path.display()))?;
    for (key, env, value) in config_settings(command, &text)
        .map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?
    {
        if std::env::var_os(&env).is_none() {
            // Before the runtime starts: the process has one thread here.
            std::env::set_var(&env, &value);
            tracing::debug!(key, env, "set from the config file");
        }
    }
    Ok(())
}

/// `--config FILE`, `--config=FILE` on the command line, else `WFL_CONFIG`.
fn config_path() -> Option<std::path::PathBuf> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    for (i, a) in args.iter().enumerate() {
        let a = a.to_string_lossy();
        if a == "--config" {
            return args.get(i + 1).map(std::path::PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(p.into());
        }
    }
    std::env::var_os(CONFIG_ENV).map(std::path::PathBuf::from)
}

/// `(key, env var, value)` for each key of a config file's text.
///
/// # Errors
/// A key that is no flag of `command`, a flag without a variable, or a value of another type.
pub fn config_settings(
    command: &clap::Command,
    text: &str,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let flag = key.replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()) && flag != "config")
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown key {key:?}: the keys are the long flags of `{}` (see --help)",
                    command.get_name()
                )
            })?;
        let env = arg
            .get_env()
            .ok_or_else(|| anyhow::anyhow!("key {key:?} cannot be set from a config file"))?
            .to_string_lossy()
            .into_owned();
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => anyhow::bail!(
                "key {key:?}: expected a string, number or boolean, got {}",
                other.type_str()
            ),
        };
        out.push((key, env, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Args {
        #[arg(long, env = "T_GRPC_ADDR", default_value = "127.0.0.1:1")]
        grpc_addr: String,
        #[arg(long)]
        no_env: bool,
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    }

    #[test]
    fn keys_map_to_their_flags_variables_and_mistakes_are_named() {
        use clap::CommandFactory;
        let cmd = Args::command();
        assert_eq!(
            config_settings(&cmd, "grpc_addr = \"0.0.0.0:9\"").expect("ok"),
            vec![(
                "grpc_addr".to_owned(),
                "T_GRPC_ADDR".to_owned(),
                "0.0.0.0:9".to_owned()
            )]
        );
        let e = config_settings(&cmd, "grpc-adr = \"x\"").expect_err("typo");
        assert!(e.to_string().contains("unknown key \"grpc-adr\""), "{e}");
        let e = config_settings(&cmd, "no-env = true").expect_err("no variable");
        assert!(e.to_string().contains("cannot be set"), "{e}");
        let e = config_settings(&cmd, "grpc-addr = [1]").expect_err("array");
        assert!(e.to_string().contains("expected a string"), "{e}");
        assert!(config_settings(&cmd, "grpc-addr = ").is_err());
    }
}
