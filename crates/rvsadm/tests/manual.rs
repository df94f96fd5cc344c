//! rvsadm(8) and the bash/zsh/fish completions are hand-written next to the parser; every
//! option of the parser's table (and `--socket`, which rvsadm takes before the parser) must be
//! in each of them.

use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn all_options() -> Vec<(&'static str, Option<char>)> {
    let mut v: Vec<_> = rvs_ipvsadm::args::options().collect();
    v.push(("socket", None));
    v
}

/// Does `text` hold `word` as a whole word (not as the prefix of a longer option)?
fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let after = text[i + word.len()..].chars().next();
        let before = text[..i].chars().next_back();
        !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
            && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

#[test]
fn the_manual_documents_every_option() {
    // roff writes a minus as `\-`.
    let man = read("man/rvsadm.8").replace("\\-", "-");
    let mut missing = Vec::new();
    for (long, short) in all_options() {
        if !has_word(&man, &format!("--{long}")) {
            missing.push(format!("--{long}"));
        }
        if let Some(c) = short {
            if !has_word(&man, &format!("-{c}")) {
                missing.push(format!("-{c}"));
            }
        }
    }
    assert!(missing.is_empty(), "not in man/rvsadm.8: {missing:?}");
}

#[test]
fn the_completions_offer_every_option() {
    let bash = read("completions/rvsadm.bash");
    let zsh = read("completions/_rvsadm");
    let fish = read("completions/rvsadm.fish");
    let mut missing = Vec::new();
    for (long, short) in all_options() {
        let l = format!("--{long}");
        if !has_word(&bash, &l) {
            missing.push(format!("bash {l}"));
        }
        if !has_word(&zsh, &l) {
            missing.push(format!("zsh {l}"));
        }
        if !fish
            .lines()
            .any(|x| x.contains(&format!(" -l {long}")) && !x.contains(&format!(" -l {long}-")))
        {
            missing.push(format!("fish {l}"));
        }
        if let Some(c) = short {
            let s = format!("-{c}");
            if !has_word(&bash, &s) {
                missing.push(format!("bash {s}"));
            }
            if !has_word(&zsh, &s) {
                missing.push(format!("zsh {s}"));
            }
            if !fish.lines().any(|x| x.contains(&format!(" -s {c}"))) {
                missing.push(format!("fish {s}"));
            }
        }
    }
    assert!(missing.is_empty(), "not offered: {missing:?}");
}
