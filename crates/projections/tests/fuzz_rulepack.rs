//! Fuzz target (proptest) for the rule-pack loader: arbitrary text, and the repository's packs
//! with bytes changed, cut or lines dropped, must never panic; a refusal names the file and
//! carries a message (`rule pack <file>: <field>: <message>`).
//!
//! Long run: `PROPTEST_CASES=1000000 cargo nextest run -p wfl-projections --test fuzz_rulepack`.

use proptest::prelude::*;
use wfl_projections::rules::parse;
use wfl_projections::Error;

const PACKS: [&str; 3] = [
    include_str!("../../../rulepacks/CN-LCL-41.toml"),
    include_str!("../../../rulepacks/US-WARN-FED.toml"),
    include_str!("../../../rulepacks/EU-9859-30D.toml"),
];

fn check(text: &str) {
    match parse("fuzz.toml", text) {
        Ok(_) => {}
        Err(Error::RulePack {
            file,
            field,
            message,
        }) => {
            assert_eq!(file, "fuzz.toml");
            assert!(!message.is_empty(), "empty message for field {field:?}");
        }
        Err(other) => panic!("parse answers only RulePack errors, got {other}"),
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn mutated_packs_never_panic(
        pack in 0..PACKS.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<char>()), 1..6),
        drop_line in any::<prop::sample::Index>(),
        drop in any::<bool>(),
    ) {
        let mut chars: Vec<char> = PACKS[pack].chars().collect();
        for (at, c) in edits {
            let i = at.index(chars.len());
            chars[i] = c;
        }
        let mut text: String = chars.into_iter().collect();
        if drop {
            let lines: Vec<&str> = text.lines().collect();
            let skip = drop_line.index(lines.len());
            text = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, l)| *l)
                .collect::<Vec<_>>()
                .join("\n");
        }
        check(&text);
    }
}

#[test]
fn the_seed_packs_parse() {
    for text in PACKS {
        parse("seed.toml", text).expect("a repository pack parses");
    }
}
