//! Unit tests for every lexical rule of docs/internals/keepalived.md#lines.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

fn opts(id: &str) -> LexOptions {
    LexOptions {
        config_id: id.into(),
    }
}

/// Lex `text` and return the logical lines as word lists.
fn words(text: &str) -> Vec<Vec<String>> {
    words_id(text, "main")
}

fn words_id(text: &str, id: &str) -> Vec<Vec<String>> {
    let (lines, _) = lex_str(Path::new("t.conf"), text, opts(id));
    lines
        .iter()
        .map(|l| l.tokens.iter().map(|t| t.text.clone()).collect())
        .collect()
}

fn w(v: &[&[&str]]) -> Vec<Vec<String>> {
    v.iter()
        .map(|l| l.iter().map(|s| s.to_string()).collect())
        .collect()
}

/// A fresh scratch directory under the system temp dir.
fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "rvs-config-lexer-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

#[test]
fn comments_hash_and_bang_end_the_line() {
    assert_eq!(
        words("weight 1   # comment\ninhibit_on_failure ! set weight to 0\n# whole line\n! also\n"),
        w(&[&["weight", "1"], &["inhibit_on_failure"]])
    );
}

#[test]
fn comment_chars_inside_double_quotes_are_text() {
    assert_eq!(
        words("misc_path \"/bin/x #1 !2\" # real comment"),
        w(&[&["misc_path", "/bin/x #1 !2"]])
    );
}

#[test]
fn single_quotes_do_not_protect_comments() {
    assert_eq!(words("a 'b # c'"), w(&[&["a", "'b"]]));
}

#[test]
fn escaped_comment_chars_are_literal() {
    assert_eq!(words(r"a b\#c d\!e"), w(&[&["a", "b#c", "d!e"]]));
}

#[test]
fn blank_lines_and_crlf_still_count_line_numbers() {
    let (lines, _) = lex_str(Path::new("t.conf"), "\r\n\n  \t\nfoo bar\r\n", opts("x"));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].tokens[0].pos.line, 4);
    assert_eq!(lines[0].tokens[1].text, "bar");
}

#[test]
fn positions_are_line_and_column() {
    let (lines, _) = lex_str(Path::new("dir/k.conf"), "x\n\t  weight   7\n", opts("x"));
    let t = &lines[1].tokens;
    assert_eq!(t[0].pos.to_string(), "dir/k.conf:2:4");
    assert_eq!(t[1].pos.to_string(), "dir/k.conf:2:13");
}

#[test]
fn double_quoted_token_keeps_spaces_and_drops_quotes() {
    assert_eq!(
        words("helo_name \"a b  c\" x"),
        w(&[&["helo_name", "a b  c", "x"]])
    );
    let (lines, _) = lex_str(Path::new("t"), "k \"{\"", opts("x"));
    assert!(lines[0].tokens[1].quoted);
    assert_eq!(lines.len(), 1, "a quoted brace is not a block");
}

#[test]
fn unquoted_token_ends_at_a_quote() {
    assert_eq!(words("abc\"d e\"f"), w(&[&["abc", "d e", "f"]]));
}

#[test]
fn unmatched_quote_is_reported() {
    let (lines, diags) = lex_str(Path::new("t"), "name \"abc def", opts("x"));
    assert_eq!(lines[0].tokens[1].text, "abc def");
    assert!(
        diags
            .iter()
            .any(|d| d.class == ErrorClass::UnmatchedQuote
                && d.message.contains("Unterminated quote"))
    );
}

#[test]
fn braces_are_split_onto_their_own_lines() {
    assert_eq!(
        words("real_server 1.2.3.4 80{ weight 2 }"),
        w(&[
            &["real_server", "1.2.3.4", "80"],
            &["{"],
            &["weight", "2"],
            &["}"]
        ])
    );
    assert_eq!(
        words("a { b { c } }"),
        w(&[&["a"], &["{"], &["b"], &["{"], &["c"], &["}"], &["}"]])
    );
}

#[test]
fn brace_split_keeps_raw_text_for_scripts() {
    let (lines, _) = lex_str(Path::new("t"), "X { misc_path \"/bin/a b\" }", opts("x"));
    assert_eq!(lines[2].raw, "misc_path \"/bin/a b\"");
    assert_eq!(lines[2].rest_from(1), "\"/bin/a b\"");
    assert_eq!(&*lines[2].source, "X { misc_path \"/bin/a b\" }");
}

#[test]
fn keywords_are_case_sensitive_at_lexing_too() {
    // The lexer does not fold case: `TCP_CHECK` and `tcp_check` stay distinct.
    assert_eq!(
        words("tcp_check TCP_CHECK"),
        w(&[&["tcp_check", "TCP_CHECK"]])
    );
}

#[test]
fn conditional_lines_match_the_config_id() {
    let text = "@main router_id A\n@backup router_id B\n@^main x 1\n@^backup y 2\n@main\nz 3\n";
    assert_eq!(
        words_id(text, "main"),
        w(&[&["router_id", "A"], &["y", "2"], &["z", "3"]])
    );
    assert_eq!(
        words_id(text, "backup"),
        w(&[&["router_id", "B"], &["x", "1"], &["z", "3"]])
    );
    assert_eq!(
        words_id(text, "other"),
        w(&[&["x", "1"], &["y", "2"], &["z", "3"]])
    );
}

#[test]
fn conditional_line_column_points_past_the_prefix() {
    let (lines, _) = lex_str(Path::new("t"), "@main   priority 240", opts("main"));
    assert_eq!(lines[0].tokens[0].pos.col, 9);
}

#[test]
fn parameters_substitute_braced_and_bare_forms() {
    let text = "$PRIO=240\n$NAME=eth0\npriority $PRIO\ninterface ${NAME}.1\nx $UNDEF\n";
    assert_eq!(
        words(text),
        w(&[
            &["priority", "240"],
            &["interface", "eth0.1"],
            &["x", "$UNDEF"]
        ])
    );
    // An undefined `${NAME}` stays as written (and, as in keepalived, its braces
    // then split the line like any other unquoted brace).
    let (lines, _) = lex_str(Path::new("t"), "$A=1\nx ${UNDEF2}", opts("x"));
    assert_eq!(&*lines[0].source, "x ${UNDEF2}");
}

#[test]
fn bare_parameter_needs_whitespace_after_it() {
    assert_eq!(words("$A=1\nx $A.2 $A"), w(&[&["x", "$A.2", "1"]]));
}

#[test]
fn substitution_is_lazy_and_recursive() {
    let text = "$ADDRESS_BASE=10.2.${ADDRESS_BASE_SUB}\n$ADDRESS_BASE_SUB=0\n${ADDRESS_BASE}.100/32\n$ADDRESS_BASE_SUB=10\n${ADDRESS_BASE}.100/32\n";
    assert_eq!(words(text), w(&[&["10.2.0.100/32"], &["10.2.10.100/32"]]));
}

#[test]
fn parameter_with_conditional_value() {
    assert_eq!(
        words_id("$IF_MAIN=@main\n$IF_MAIN priority 240\n", "main"),
        w(&[&["priority", "240"]])
    );
    assert!(words_id("$IF_MAIN=@main\n$IF_MAIN priority 240\n", "backup").is_empty());
    assert_eq!(
        words_id("@main $P=240\n@backup $P=200\np $P\n", "backup"),
        w(&[&["p", "200"]])
    );
}

#[test]
fn empty_parameter_value() {
    assert_eq!(words("$ALPHA=\nx ${ALPHA} y"), w(&[&["x", "y"]]));
}

#[test]
fn multi_line_parameters_expand_to_several_lines() {
    let text = "$INST= \\\nvrrp_instance VI_${NUM} { \\\n  priority 1${NUM} \\\n}\n$NUM=0\n$INST\n$NUM=1\n$INST\n";
    assert_eq!(
        words(text),
        w(&[
            &["vrrp_instance", "VI_0"],
            &["{"],
            &["priority", "10"],
            &["}"],
            &["vrrp_instance", "VI_1"],
            &["{"],
            &["priority", "11"],
            &["}"]
        ])
    );
}

#[test]
fn multi_line_parameters_nest() {
    let text = "$RS= \\\nreal_server 10.0.0.${N} 80\n$VS= \\\nvs { \\\n $N=1 \\\n $RS \\\n $N=2 \\\n $RS \\\n}\n$VS\n";
    assert_eq!(
        words(text),
        w(&[
            &["vs"],
            &["{"],
            &["real_server", "10.0.0.1", "80"],
            &["real_server", "10.0.0.2", "80"],
            &["}"]
        ])
    );
}

#[test]
fn recursive_parameter_is_bounded() {
    let (_, diags) = lex_str(Path::new("t"), "$A=$A x\n$A\n", opts("x"));
    assert!(diags
        .iter()
        .any(|d| d.message.contains("nested too deeply")));
}

#[test]
fn predefined_parameters() {
    let d = scratch();
    let f = d.join("k.conf");
    let text = "a ${_INSTANCE} ${_HASH} ${_BANG} ${_PWD}\nb ${_RANDOM 5 5}\n";
    let (lines, _) = lex_str(&f, text, opts("node1"));
    let t: Vec<&str> = lines[0].tokens.iter().map(|t| t.text.as_str()).collect();
    let canon = std::fs::canonicalize(&d).expect("canon");
    assert_eq!(
        t,
        vec!["a", "node1", "#", "!", canon.to_str().expect("utf8")]
    );
    assert_eq!(lines[1].tokens[1].text, "5");
}

#[test]
fn seq_expands_decimal_hex_and_defaults() {
    assert_eq!(
        words("~SEQ(S, 0, 3) ip 10.0.${S}.1"),
        w(&[
            &["ip", "10.0.0.1"],
            &["ip", "10.0.1.1"],
            &["ip", "10.0.2.1"],
            &["ip", "10.0.3.1"]
        ])
    );
    assert_eq!(
        words("~SEQx(S, 0x90, 0x10, 0xc0) fe80::20:${S}:1"),
        w(&[
            &["fe80::20:90:1"],
            &["fe80::20:a0:1"],
            &["fe80::20:b0:1"],
            &["fe80::20:c0:1"]
        ])
    );
    assert_eq!(words("~SEQ(S, 3) v${S}"), w(&[&["v1"], &["v2"], &["v3"]]));
    assert_eq!(
        words("~SEQ(S, 3, 1) v${S}"),
        w(&[&["v3"], &["v2"], &["v1"]])
    );
}

#[test]
fn several_seq_prefixes_nest() {
    assert_eq!(
        words("~SEQ(A, 1, 2) ~SEQ(B, 0, 1) x${A}${B}"),
        w(&[&["x10"], &["x11"], &["x20"], &["x21"]])
    );
}

#[test]
fn lst_single_and_multiple_variables() {
    assert_eq!(
        words("~LST(V, a, b, c) x ${V}"),
        w(&[&["x", "a"], &["x", "b"], &["x", "c"]])
    );
    assert_eq!(
        words("~LST({IP, IP1}, {10,1},{20,4}) 192.168.${IP}.${IP1}"),
        w(&[&["192.168.10.1"], &["192.168.20.4"]])
    );
}

#[test]
fn bad_seq_is_reported_not_panicking() {
    for bad in [
        "~SEQ(",
        "~SEQ(X, a, b)",
        "~SEQ(X, 1, 0, 5)",
        "~LST()",
        "~LST(V)",
        "~SEQ(1x, 3)",
    ] {
        let (lines, diags) = lex_str(Path::new("t"), bad, opts("x"));
        assert!(lines.is_empty(), "{bad}");
        assert!(
            diags.iter().any(|d| d.message.contains("~SEQ/~LST")),
            "{bad}: {diags:?}"
        );
    }
}

#[test]
fn include_is_relative_to_the_including_file_and_globs() {
    let d = scratch();
    std::fs::create_dir_all(d.join("conf.d/sub")).expect("mkdir");
    std::fs::write(d.join("main.conf"), "a 1\ninclude conf.d/*.conf\nz 9\n").expect("write");
    std::fs::write(d.join("conf.d/b.conf"), "b 2\ninclude sub/x.conf\n").expect("write");
    std::fs::write(d.join("conf.d/c.conf"), "c 3\n").expect("write");
    std::fs::write(d.join("conf.d/sub/x.conf"), "x 4\n").expect("write");
    let (lines, diags) = lex_file(&d.join("main.conf"), opts("x"));
    assert!(diags.is_empty(), "{diags:?}");
    let got: Vec<String> = lines.iter().map(|l| l.raw.clone()).collect();
    assert_eq!(got, vec!["a 1", "b 2", "x 4", "c 3", "z 9"]);
    assert!(lines[2].pos().file.ends_with("conf.d/sub/x.conf"));
    assert_eq!(lines[2].pos().line, 1);
}

#[test]
fn include_supports_csh_braces() {
    let d = scratch();
    std::fs::write(d.join("main.conf"), "include {b,a}.inc\n").expect("write");
    std::fs::write(d.join("a.inc"), "a 1\n").expect("write");
    std::fs::write(d.join("b.inc"), "b 1\n").expect("write");
    let (lines, _) = lex_file(&d.join("main.conf"), opts("x"));
    let got: Vec<&str> = lines.iter().map(|l| l.raw.as_str()).collect();
    assert_eq!(got, vec!["b 1", "a 1"]);
}

#[test]
fn include_without_match_is_silent_for_wildcards_but_not_for_names() {
    let d = scratch();
    std::fs::write(
        d.join("main.conf"),
        "include none/*.conf\ninclude missing.conf\nincluder gone/*.conf\n",
    )
    .expect("write");
    let (_, diags) = lex_file(&d.join("main.conf"), opts("x"));
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert_eq!(diags[0].class, ErrorClass::Warning);
    assert_eq!(diags[0].pos.as_ref().map(|p| p.line), Some(2));
    assert_eq!(diags[1].class, ErrorClass::FileNotFound);
}

#[test]
fn include_loops_are_detected() {
    let d = scratch();
    std::fs::write(d.join("a.conf"), "include b.conf\n").expect("write");
    std::fs::write(d.join("b.conf"), "include a.conf\nb 1\n").expect("write");
    let (lines, diags) = lex_file(&d.join("a.conf"), opts("x"));
    assert_eq!(lines.len(), 1);
    assert!(diags.iter().any(|d| d.message.contains("include loop")));
}

#[test]
fn missing_top_level_file_is_file_not_found() {
    let (_, diags) = lex_file(Path::new("/nonexistent/rvs/k.conf"), opts("x"));
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].class, ErrorClass::FileNotFound);
    assert!(diags[0].message.contains("/nonexistent/rvs/k.conf"));
}

#[test]
fn quoted_escaped_tokenizer() {
    assert_eq!(
        split_quoted_escaped(r#"abc" d"e 'x y' z"#),
        vec!["abc de", "x y", "z"]
    );
    assert_eq!(
        split_quoted_escaped(r"a\tb \x41\101 \cA \q"),
        vec!["a\tb", "AA", "\u{1}", "q"]
    );
    assert_eq!(
        split_quoted_escaped(r#""/bin/s.sh a1 a2" user grp"#),
        vec!["/bin/s.sh a1 a2", "user", "grp"]
    );
    assert!(split_quoted_escaped("   ").is_empty());
    assert_eq!(split_quoted_escaped("\\"), vec!["\\"]);
}

#[test]
fn brace_expansion() {
    assert_eq!(expand_braces("a{b,c}d"), vec!["abd", "acd"]);
    assert_eq!(expand_braces("{x,y{1,2}}"), vec!["x", "y1", "y2"]);
    assert_eq!(expand_braces("no{brace"), vec!["no{brace"]);
}

#[test]
fn trailing_backslash_outside_definitions_is_text() {
    assert_eq!(words("a b\\"), w(&[&["a", "b\\"]]));
}

#[test]
fn runaway_expansions_are_reported() {
    let (_, diags) = lex_str(Path::new("t"), "$A=${A}${A}\n$A\n", opts("x"));
    assert!(
        diags
            .iter()
            .any(|d| d.message.contains("would exceed maximum line length")),
        "{diags:?}"
    );
    let (lines, diags) = lex_str(Path::new("t"), "~SEQ(I, 0, 200000) x\n", opts("x"));
    assert!(lines.is_empty());
    assert!(diags
        .iter()
        .any(|d| d.message.contains("more than 100000 values")));
    let (lines, diags) = lex_str(
        Path::new("t"),
        // 201 000 values (within their budget), seven lines each: the line limit stops it.
        "~SEQ(A, 1, 1000) ~SEQ(B, 1, 200) a { b { c } }\n",
        opts("x"),
    );
    assert_eq!(lines.len(), MAX_LINES);
    assert_eq!(
        diags
            .iter()
            .filter(|d| d.class == ErrorClass::Fatal && d.message.contains("more than"))
            .count(),
        1
    );
}

#[test]
fn text_after_a_brace_is_read_again_as_a_line() {
    // keepalived pushes the rest of the line back and reads it like a new line,
    // so a conditional after a brace applies to the rest of the line.
    assert_eq!(
        words_id("vs { @main weight 1 }", "main"),
        w(&[&["vs"], &["{"], &["weight", "1"], &["}"]])
    );
    assert_eq!(
        words_id("vs { @main weight 1 }", "other"),
        w(&[&["vs"], &["{"]])
    );
    let (lines, _) = lex_str(Path::new("t"), "a {  b 1 }", opts("x"));
    let cols: Vec<u32> = lines.iter().map(|l| l.pos().col).collect();
    assert_eq!(cols, vec![1, 3, 6, 10]);
    assert!(lines.iter().all(|l| &*l.source == "a {  b 1 }"));
}
