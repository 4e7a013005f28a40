//! Compiles proto/wfl/v1/*.proto (and the internal proto/wfl/internal/v1/*.proto) once, with a
//! vendored protoc so a fresh machine needs no system protoc, and writes the descriptor set that
//! gRPC reflection serves. prost-build runs protoc with `--include_source_info`, so the set keeps
//! the `.proto` comments for reflection clients (checked by a unit test in src/lib.rs).

/// The messages of the typed view answers (views.proto), which derive `serde::Serialize`.
const VIEW_MESSAGES: [&str; 17] = [
    "AiShare",
    "SeparationRow",
    "BucketTotal",
    "SeparationsView",
    "HeadcountFigures",
    "HeadcountRow",
    "HeadcountView",
    "CohortExposureRow",
    "CohortExposureView",
    "HiringPauseRow",
    "GraduateIntakeRow",
    "HiringSignalsView",
    "AiUsageRow",
    "AiToolRow",
    "RolesAutomated",
    "ExternalTarget",
    "AiAdoptionView",
];

/// View fields whose JSON name differs from the proto one (`from` is a keyword in Python).
const VIEW_JSON_NAMES: [(&str, &str); 8] = [
    ("CohortExposureView.from_date", "from"),
    ("CohortExposureView.to_date", "to"),
    ("HiringPauseRow.org_id", "org"),
    ("HiringPauseRow.site_id", "site"),
    ("GraduateIntakeRow.org_id", "org"),
    ("AiUsageRow.org_id", "org"),
    ("AiToolRow.org_id", "org"),
    ("AiToolRow.site_id", "site"),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        // SAFETY-free: build scripts are single-threaded; setting PROTOC only affects prost-build.
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    // The manifest directory as of this run, not `env!` (fixed when the script was compiled): a
    // target directory copied to another checkout must compile that checkout's protos.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "wfl/v1/events.proto",
        "wfl/v1/ingest.proto",
        "wfl/v1/ledger.proto",
        "wfl/v1/views.proto",
    ]
    .map(|f| root.join(f));
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // The typed view answers serialise (serde) to the JSON documents `wfl report --format json`
    // prints: the field names the views have always had in JSON (`org`, `from`...).
    let mut config = tonic_build::configure();
    for message in VIEW_MESSAGES {
        config = config.type_attribute(format!(".wfl.v1.{message}"), "#[derive(serde::Serialize)]");
    }
    for (field, json) in VIEW_JSON_NAMES {
        config = config.field_attribute(
            format!(".wfl.v1.{field}"),
            format!("#[serde(rename = \"{json}\")]"),
        );
    }
    config
        .btree_map([".wfl.v1.HeadcountRow"])
        .file_descriptor_set_path(out.join("wfl_descriptor.bin"))
        // Undecodable requests are INVALID_ARGUMENT, not tonic's INTERNAL (src/codec.rs).
        .codec_path("crate::codec::Codec")
        .compile_protos(
            &files,
            &[root.clone(), protoc_bin_vendored::include_path()?],
        )?;
    // Internal messages (wfl.internal.v1, self-contained): generated apart and kept out of the
    // descriptor set that reflection serves.
    let internal = [
        root.join("wfl/internal/v1/outcomes.proto"),
        root.join("wfl/internal/v1/partition.proto"),
    ];
    tonic_build::configure()
        .build_client(false)
        .build_server(false)
        .compile_protos(
            &internal,
            &[root.clone(), protoc_bin_vendored::include_path()?],
        )?;
    for f in files.iter().chain(&internal) {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    Ok(())
}
