use serde_json::{Value, json};

use super::*;

fn engine(templates: &[(&str, &str)]) -> Engine {
    let files: Vec<TemplateFile> = templates
        .iter()
        .map(|(n, t)| TemplateFile {
            name: n.to_string(),
            text: t.to_string(),
        })
        .collect();
    Engine::new(&files).unwrap_or_else(|e| panic!("{e:?}"))
}

fn render_one(template: &str, values: Value) -> Result<Value, RenderError> {
    let e = engine(&[("t.yaml.hbs", template)]);
    let docs = e.render(json!({"values": values, "env": {"name": "dev", "namespace": "ns"}}))?;
    assert_eq!(docs.len(), 1, "{docs:?}");
    Ok(docs.into_iter().next().unwrap().value)
}

const INJECTIONS: [&str; 22] = [
    "line1\nline2",
    "a: b",
    "x # not a comment",
    "{a: b}",
    "[1, 2]",
    "*alias",
    "&anchor x",
    "!!binary x",
    "| block",
    "> folded",
    "\"dq\"",
    "'sq'",
    "---",
    "--- \nkind: Secret",
    "on",
    "yes",
    "no",
    "off",
    "1.20",
    "true",
    "",
    "  padded  ",
];

#[test]
fn a_value_never_changes_the_structure_of_the_output() {
    for s in INJECTIONS {
        let got = render_one("k: {{values.v}}\nother: fixed\n", json!({"v": s})).unwrap();
        assert_eq!(got, json!({"k": s, "other": "fixed"}), "{s:?}");
        let got = render_one(
            "k: \"pre-{{values.v}}\"\nl:\n  - x{{values.v}}\n",
            json!({"v": s}),
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"k": format!("pre-{s}"), "l": [format!("x{s}")]}),
            "{s:?}"
        );
    }
}

#[test]
fn a_value_used_as_a_key_stays_one_key() {
    for s in INJECTIONS {
        let got = render_one(
            "env:\n{{#each values.m}}\n  {{@key}}: {{this}}\n{{/each}}\n",
            json!({"m": {s: s}}),
        )
        .unwrap();
        assert_eq!(got, json!({"env": {s: s}}), "{s:?}");
    }
}

#[test]
fn values_keep_their_type() {
    let got = render_one(
        "n: {{values.n}}\nb: {{values.b}}\ns: {{values.s}}\nf: {{values.f}}\n",
        json!({"n": 3, "b": true, "s": "3", "f": 1.5}),
    )
    .unwrap();
    assert_eq!(got, json!({"n": 3, "b": true, "s": "3", "f": 1.5}));
}

#[test]
fn a_missing_value_names_template_line_and_key() {
    let err = render_one("a: 1\nb: {{values.global.host}}\n", json!({})).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("t.yaml.hbs") && text.contains("line 2") && text.contains("`global.host`"),
        "{text}"
    );
}

#[test]
fn a_missing_value_in_a_condition_is_false() {
    let got = render_one(
        "a: 1\n{{#if values.ldap.enabled}}\nldap: yes\n{{/if}}\n",
        json!({}),
    )
    .unwrap();
    assert_eq!(got, json!({"a": 1}));
}

#[test]
fn a_map_in_a_scalar_position_is_an_error_suggesting_toyaml() {
    let err = render_one("a: {{values.m}}\n", json!({"m": {"x": 1}})).unwrap_err();
    assert!(err.to_string().contains("toYaml"), "{err}");
}

#[test]
fn raw_output_is_refused_at_compile_time() {
    for t in [
        "a: {{{values.x}}}\n",
        "a: 1\nb: {{& values.x}}\n",
        "a: {{~{values.x}~}}\n",
    ] {
        let files = vec![TemplateFile {
            name: "t.yaml.hbs".into(),
            text: t.into(),
        }];
        let errs = Engine::new(&files).err().expect("refused");
        assert!(errs[0].to_string().contains("raw output"), "{:?}", errs);
    }
}

#[test]
fn template_syntax_errors_name_template_and_line() {
    let files = vec![
        TemplateFile {
            name: "good.yaml.hbs".into(),
            text: "a: 1\n".into(),
        },
        TemplateFile {
            name: "bad.yaml.hbs".into(),
            text: "a: 1\n{{#if x}}\nb: 2\n".into(),
        },
        TemplateFile {
            name: "worse.yaml.hbs".into(),
            text: "a: {{/each}}\n".into(),
        },
    ];
    let errs = Engine::new(&files).err().expect("refused");
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs.iter().any(|e| e.to_string().contains("bad.yaml.hbs")));
    assert!(
        errs.iter()
            .any(|e| e.to_string().contains("worse.yaml.hbs, line 1")
                || e.to_string().contains("`worse.yaml.hbs`, line 1")),
        "{errs:?}"
    );
}

#[test]
fn unparseable_output_names_template_and_document() {
    let err = render_one_docs("a: 1\n---\nb: [unclosed\n").unwrap_err();
    match err {
        RenderError::Parse {
            template, index, ..
        } => {
            assert_eq!(template, "t.yaml.hbs");
            assert_eq!(index, 2);
        }
        other => panic!("{other}"),
    }
}

fn render_one_docs(template: &str) -> Result<Vec<RenderedDoc>, RenderError> {
    engine(&[("t.yaml.hbs", template)]).render(json!({"values": {}}))
}

#[test]
fn empty_documents_are_dropped() {
    let docs = render_one_docs("---\n{{#if values.nothing}}\na: 1\n{{/if}}\n---\nb: 2\n").unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].value, json!({"b": 2}));
}

#[test]
fn to_yaml_writes_structure_with_exact_strings() {
    let got = render_one(
        "resources:{{nindent 2 (toYaml values.r)}}\n",
        json!({"r": {"limits": {"cpu": "on", "memory": "1Gi"}, "n": 2, "l": ["a: b", "x"]}}),
    )
    .unwrap();
    assert_eq!(
        got,
        json!({"resources": {"limits": {"cpu": "on", "memory": "1Gi"}, "n": 2, "l": ["a: b", "x"]}})
    );
}

#[test]
fn quote_makes_a_string_of_anything() {
    let got = render_one(
        "a: {{quote values.n}}\nb: {{quote values.s}}\n",
        json!({"n": 3, "s": "x\"y"}),
    )
    .unwrap();
    assert_eq!(got, json!({"a": "3", "b": "x\"y"}));
}

#[test]
fn default_uses_the_fallback_for_missing_or_empty_values() {
    let got = render_one(
        "a: {{default \"fb\" values.missing}}\nb: {{default \"fb\" values.empty}}\nc: {{default \"fb\" values.set}}\nd: {{default 2 values.missing}}\n",
        json!({"empty": "", "set": "mine"}),
    )
    .unwrap();
    assert_eq!(got, json!({"a": "fb", "b": "fb", "c": "mine", "d": 2}));
}

#[test]
fn required_fails_with_its_message_when_unset() {
    let err = render_one(
        "a: {{required \"set global.host\" values.global.host}}\n",
        json!({"global": {}}),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("set global.host") && err.to_string().contains("global.host"),
        "{err}"
    );
    let got = render_one("a: {{required \"m\" values.h}}\n", json!({"h": "x"})).unwrap();
    assert_eq!(got, json!({"a": "x"}));
}

#[test]
fn b64enc_sha256sum_lower_upper() {
    let got = render_one(
        "a: {{b64enc values.s}}\nb: {{sha256sum values.s}}\nc: {{lower values.m}}\nd: {{upper values.m}}\n",
        json!({"s": "hello", "m": "MiXed"}),
    )
    .unwrap();
    assert_eq!(
        got,
        json!({"a": "aGVsbG8=", "b": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", "c": "mixed", "d": "MIXED"})
    );
}

#[test]
fn url_host_keeps_the_host_of_a_url_as_an_ingress_rule_names_it() {
    let got = render_one(
        "a: {{urlHost values.a}}\nb: {{urlHost values.b}}\nc: {{urlHost values.c}}\n",
        json!({"a": "https://a.example.com/x", "b": "http://u@b.example.com:8443?q=1", "c": "c.example.com"}),
    )
    .unwrap();
    assert_eq!(
        got,
        json!({"a": "a.example.com", "b": "b.example.com", "c": "c.example.com"})
    );
}

#[test]
fn indent_and_nindent_place_values_and_structure() {
    let cert = "-----BEGIN-----\nabc\n-----END-----\n";
    let got = render_one(
        "a:{{nindent 2 \"x\"}}\nb: |-{{nindent 2 values.cert}}\n",
        json!({"cert": cert}),
    )
    .unwrap();
    assert_eq!(got, json!({"a": "x", "b": cert}));
    let got = render_one(
        "m:\n{{indent 2 (toYaml values.m)}}\n",
        json!({"m": {"k": "v", "n": {"x": 1}}}),
    )
    .unwrap();
    assert_eq!(got, json!({"m": {"k": "v", "n": {"x": 1}}}));
}

#[test]
fn include_renders_a_partial_with_a_context() {
    let e = engine(&[
        ("_partials/labels.hbs", "app: {{name}}\nteam: {{team}}"),
        (
            "t.yaml.hbs",
            "labels:{{nindent 2 (include \"labels\" values)}}\n",
        ),
    ]);
    let docs = e
        .render(json!({"values": {"name": "a: b", "team": "on"}}))
        .unwrap();
    assert_eq!(
        docs[0].value,
        json!({"labels": {"app": "a: b", "team": "on"}})
    );
}

#[test]
fn partials_render_with_the_partial_syntax() {
    let e = engine(&[
        ("_partials/labels.hbs", "app: {{values.name}}\n"),
        ("t.yaml.hbs", "labels:\n  {{> labels}}\n"),
    ]);
    let docs = e.render(json!({"values": {"name": "x"}})).unwrap();
    assert_eq!(docs[0].value, json!({"labels": {"app": "x"}}));
}

#[test]
fn comparison_and_logic_helpers_work_in_conditions() {
    let t = "{{#if (eq values.p \"s3\")}}\na: s3\n{{/if}}\n{{#if (ne values.p \"gcs\")}}\nb: notgcs\n{{/if}}\n{{#if (and values.t (not values.f))}}\nc: and\n{{/if}}\n{{#if (or values.f values.t)}}\nd: or\n{{/if}}\n";
    let got = render_one(t, json!({"p": "s3", "t": true, "f": false})).unwrap();
    assert_eq!(
        got,
        json!({"a": "s3", "b": "notgcs", "c": "and", "d": "or"})
    );
    let got = render_one(
        &format!("z: 0\n{t}"),
        json!({"p": "gcs", "t": false, "f": false}),
    )
    .unwrap();
    assert_eq!(got, json!({"z": 0}));
}

#[test]
fn a_plaintext_credential_is_refused_with_a_hint() {
    let err = render_one(
        "l: {{values.global.license}}\n",
        json!({"global": {"license": "eyJhbGci"}}),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("global.license") && text.contains("licenseSecret"),
        "{text}"
    );
    assert!(
        !text.contains("eyJhbGci"),
        "the error leaks the secret: {text}"
    );
    for t in [
        "l: {{b64enc values.p}}\n",
        "l: {{quote values.p}}\n",
        "l: {{upper values.p}}\n",
        "l: {{default \"x\" values.p}}\n",
        "m:{{nindent 2 (toYaml values)}}\n",
    ] {
        let err = render_one(t, json!({"p": "s3://u:pw@h/b", "password": "pw"})).unwrap_err();
        assert!(err.to_string().contains("credential"), "{t}: {err}");
    }
}

#[test]
fn plaintext_credentials_are_allowed_when_the_environment_says_so() {
    let e = engine(&[("t.yaml.hbs", "l: {{values.license}}\n")]);
    let docs = e
        .render(json!({"values": {"license": "abc"}, "env": {"allowPlaintextSecrets": true}}))
        .unwrap();
    assert_eq!(docs[0].value, json!({"l": "abc"}));
}

#[test]
fn scalars_from_values_are_tracked() {
    let e = engine(&[(
        "t.yaml.hbs",
        "kind: Secret\nstringData:\n  a: {{values.x}}\n  b: fixed\n",
    )]);
    let docs = e.render(json!({"values": {"x": "v"}})).unwrap();
    let field = vec!["stringData".to_string(), "a".to_string()];
    let key = vec!["values".to_string(), "x".to_string()];
    assert_eq!(docs[0].from_values, vec![(field, vec![key])]);
}

#[test]
fn rendered_fields_remember_the_keys_they_came_from() {
    let e = engine(&[(
        "t.yaml.hbs",
        "a: {{values.n}}
b: x-{{values.s}}
c:{{nindent 2 (toYaml values.m)}}
d: {{default 1 values.n}}
",
    )]);
    let docs = e
        .render(json!({"values": {"n": 2, "s": "y", "m": {"k": "v"}}}))
        .unwrap();
    let keys: Vec<(String, String)> = docs[0]
        .from_values
        .iter()
        .map(|(field, keys)| {
            (
                field.join("."),
                keys.iter()
                    .map(|k| k.join("."))
                    .collect::<Vec<_>>()
                    .join(","),
            )
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            ("a".to_string(), "values.n".to_string()),
            ("b".to_string(), "values.s".to_string()),
            ("c.k".to_string(), "values.m.k".to_string()),
            ("d".to_string(), "values.n".to_string()),
        ]
    );
}

#[test]
fn the_digest_changes_with_any_template() {
    let a = engine(&[("t.yaml.hbs", "a: 1\n")]);
    let b = engine(&[("t.yaml.hbs", "a: 2\n")]);
    assert_ne!(a.digest(), b.digest());
    assert_eq!(a.digest(), engine(&[("t.yaml.hbs", "a: 1\n")]).digest());
}

/// Issue 8 (found by the `template` fuzz target): a partial that includes
/// itself, directly, through another partial, through `include` or as an
/// inline partial, recursed until the stack overflowed and killed the process.
#[test]
fn issue_8_a_partial_including_itself_is_an_error_not_a_stack_overflow() {
    let cases: [&[(&str, &str)]; 4] = [
        &[
            ("t.yaml.hbs", "a: {{> loop}}\n"),
            ("_partials/loop.hbs", "x{{> loop}}"),
        ],
        &[
            ("t.yaml.hbs", "a: {{> ping}}\n"),
            ("_partials/ping.hbs", "{{> pong}}"),
            ("_partials/pong.hbs", "{{> ping}}"),
        ],
        &[
            ("t.yaml.hbs", "a: {{include \"loop\"}}\n"),
            ("_partials/loop.hbs", "{{include \"loop\"}}"),
        ],
        &[(
            "t.yaml.hbs",
            "{{#*inline \"me\"}}{{> me}}{{/inline}}a: {{> me}}\n",
        )],
    ];
    for templates in cases {
        let engine = engine(templates);
        // The default stack of a thread (2 MiB), as rayon's workers have.
        let result = std::thread::spawn(move || engine.render(json!({"values": {}})))
            .join()
            .expect("the render panicked");
        let err = result.unwrap_err().to_string();
        assert!(
            err.contains("include one another more than 32 levels"),
            "{err}"
        );
    }
    // Partials nested less deeply than that still render.
    let nested = engine(&[
        ("t.yaml.hbs", "a: {{> one}}\n"),
        ("_partials/one.hbs", "{{> two}}"),
        (
            "_partials/two.hbs",
            "{{#*inline \"three\"}}x{{/inline}}{{> three}}",
        ),
    ]);
    let docs = nested.render(json!({"values": {}})).unwrap();
    assert_eq!(docs[0].value, json!({"a": "x"}));
}

fn compile_errors(templates: &[(&str, &str)]) -> Vec<RenderError> {
    let files: Vec<TemplateFile> = templates
        .iter()
        .map(|(n, t)| TemplateFile {
            name: n.to_string(),
            text: t.to_string(),
        })
        .collect();
    Engine::new(&files).err().unwrap_or_default()
}

/// Issue 13, item 1: the raw-output check is made on the parsed template, so
/// no spelling of `{{{x}}}` or `{{&x}}`, in no kind of block, gets through.
#[test]
fn raw_output_in_any_spelling_is_refused_at_compile_time() {
    let spellings = [
        "{{{values.x}}}",
        "{{& values.x}}",
        "{{&values.x}}",
        "{{ &x }}",
        "{{ {values.x} }}",
        "{{~&values.x}}",
        "{{~{values.x}~}}",
        "{{\t&values.x}}",
        "{{\n&values.x}}",
        "{{\t{values.x}\t}}",
        "{{& (lookup values \"x\")}}",
        "{{{quote values.x}}}",
    ];
    let places = [
        "a: 1\nb: RAW\n",
        "a: 1\n{{#if values.y}}\nb: RAW\n{{/if}}\n",
        "a: 1\n{{#if values.y}}\nc: 1\n{{else}}\nb: RAW\n{{/if}}\n",
        "a: 1\n{{#each values.l}}\nb: RAW\n{{/each}}\n",
        "a: 1\n{{#*inline \"p\"}}\nb: RAW\n{{/inline}}\n",
        "a: 1\n{{#> missing}}\nb: RAW\n{{/missing}}\n",
        "a: 1\n{{#with values}}{{#unless y}}\nb: RAW\n{{/unless}}{{/with}}\n",
    ];
    for raw in spellings {
        for place in places {
            let text = place.replace("RAW", raw);
            let errs = compile_errors(&[("t.yaml.hbs", &text)]);
            assert_eq!(errs.len(), 1, "not refused: {text:?}");
            let msg = errs[0].to_string();
            assert!(
                msg.contains("raw output") && msg.contains("`t.yaml.hbs`, line "),
                "{text:?}: {msg}"
            );
        }
        // In a partial too.
        let errs = compile_errors(&[
            ("t.yaml.hbs", "a: {{> p}}\n"),
            ("_partials/p.hbs", &format!("x{raw}")),
        ]);
        assert!(
            errs.len() == 1 && errs[0].to_string().contains("_partials/p.hbs"),
            "{raw}: {errs:?}"
        );
    }
    // The line is the expression's line.
    let errs = compile_errors(&[("t.yaml.hbs", "a: 1\n\n{{#if y}}\nb: {{ &x }}\n{{/if}}\n")]);
    assert!(errs[0].to_string().contains("line 4"), "{errs:?}");
}

#[test]
fn reserved_characters_in_a_template_are_refused_at_compile_time() {
    for c in ['\u{E000}', '\u{E001}', '\u{E002}', '\u{E00F}'] {
        let errs = compile_errors(&[("t.yaml.hbs", &format!("a: 1\nb: {c}x\n"))]);
        assert!(
            errs.len() == 1 && errs[0].to_string().contains("line 2"),
            "{errs:?}"
        );
    }
}

/// Every kind of input a helper can receive, as template syntax, and its
/// plain text.
const INPUTS: [(&str, &str); 6] = [
    ("values.s", "a: b"),
    ("\"lit\"", "lit"),
    ("(include \"p\" values)", "k: a: b\nn: 2"),
    ("(toYaml values.m)", "k: \"a: b\""),
    ("(lookup values \"s\")", "a: b"),
    ("(quote values.s)", "\"a: b\""),
];

fn helper_engine(template: &str) -> Engine {
    engine(&[
        ("_partials/p.hbs", "k: {{s}}\nn: {{n}}"),
        ("t.yaml.hbs", template),
    ])
}

fn helper_data() -> Value {
    json!({"values": {"s": "a: b", "n": 2, "m": {"k": "a: b"}}, "env": {"name": "dev"}})
}

/// Issue 13, item 1: hydrant's sentinels and trusted marks never leak into a
/// manifest, whatever helper is applied to whatever input: each helper decodes
/// what it receives and encodes what it makes.
#[test]
fn every_helper_over_every_kind_of_input_writes_no_reserved_character() {
    use base64::Engine as _;
    use sha2::Digest;
    type Transform = fn(&str) -> String;
    let transforms: [(&str, Transform); 8] = [
        ("quote", |s| s.to_string()),
        ("b64enc", |s| {
            base64::engine::general_purpose::STANDARD.encode(s)
        }),
        ("sha256sum", |s| hex::encode(sha2::Sha256::digest(s))),
        ("upper", str::to_uppercase),
        ("lower", str::to_lowercase),
        ("default \"fb\"", |s| s.to_string()),
        ("required \"m\"", |s| s.to_string()),
        ("toYaml", |s| s.to_string()),
    ];
    for (input, plain) in INPUTS {
        for (helper, f) in transforms {
            for nested in [false, true] {
                let template = if nested {
                    format!("out: {{{{quote ({helper} {input})}}}}\n")
                } else {
                    format!("out: {{{{{helper} {input}}}}}\n")
                };
                let trusted_input = input.starts_with("(include")
                    || input.starts_with("(toYaml")
                    || input.starts_with("(quote");
                // `default` and `required` pass trusted structure on as it
                // is: here it lands where YAML takes no map.
                let structural = !nested
                    && trusted_input
                    && matches!(helper, "default \"fb\"" | "required \"m\"");
                let docs = match helper_engine(&template).render(helper_data()) {
                    Err(RenderError::Parse { .. }) if structural => continue,
                    other => other.unwrap_or_else(|e| panic!("{template}: {e}")),
                };
                let v = &docs[0].value;
                assert_eq!(safe::find_reserved_in(v), None, "{template}: {v}");
                if helper == "toYaml" || structural {
                    continue;
                }
                let expected = match (nested, helper) {
                    (true, "quote") => format!("\"{}\"", f(plain)),
                    _ => f(plain),
                };
                assert_eq!(v["out"], json!(expected), "{template}");
            }
        }
        for template in [
            format!("out:\n{{{{indent 2 {input}}}}}\n"),
            format!("out: |-{{{{nindent 2 {input}}}}}\n"),
            format!("out:{{{{nindent 2 {input}}}}}\n"),
        ] {
            let docs = helper_engine(&template)
                .render(helper_data())
                .unwrap_or_else(|e| panic!("{template}: {e}"));
            assert_eq!(safe::find_reserved_in(&docs[0].value), None, "{template}");
        }
    }
}

/// Issue 13, item 7: every way a template can read a value goes through the
/// credential guard: `lookup`, block parameters, `@root`, `with`, `each`.
#[test]
fn a_credential_is_refused_whatever_helper_reads_it() {
    let values = json!({"password": "hunter2", "db": {"pwd": "hunter2"}, "auth": "hunter2"});
    for t in [
        "a: {{lookup values \"password\"}}\n",
        "a: {{lookup values.db \"pwd\"}}\n",
        "a: {{quote (lookup values \"password\")}}\n",
        "a: {{b64enc (lookup values.db \"pwd\")}}\n",
        "a: x{{lookup values \"auth\"}}\n",
        "{{#with values}}a: {{lookup this \"password\"}}{{/with}}\n",
        "{{#each values as |v k|}}{{#if (eq k \"password\")}}a: {{v}}{{/if}}{{/each}}\n",
        "{{#each values as |v k|}}{{#if (eq k \"password\")}}a: {{upper v}}{{/if}}{{/each}}\n",
        "{{#each values}}{{#if (eq @key \"password\")}}a: {{this}}{{/if}}{{/each}}\n",
        "a: {{@root.values.password}}\n",
        "{{#with values.db}}a: {{pwd}}{{/with}}\n",
        "a:{{nindent 2 (toYaml (lookup values \"db\"))}}\n",
        "a: {{include \"p\" values.db}}\n",
    ] {
        let e = engine(&[("_partials/p.hbs", "{{pwd}}"), ("t.yaml.hbs", t)]);
        let result = e.render(json!({"values": values, "env": {"name": "dev"}}));
        let err = match result {
            Err(e) => e.to_string(),
            Ok(docs) => panic!("{t}: written: {:?}", docs[0].value),
        };
        assert!(err.contains("credential"), "{t}: {err}");
        assert!(!err.contains("hunter2"), "{t}: the error shows it: {err}");
    }
    // With the environment's permission, `lookup` reads it, inside partials too.
    let e = engine(&[
        ("_partials/p.hbs", "{{pwd}}"),
        (
            "t.yaml.hbs",
            "a: {{lookup values \"password\"}}\nb: {{include \"p\" values.db}}\n",
        ),
    ]);
    let docs = e
        .render(json!({"values": values, "env": {"allowPlaintextSecrets": true}}))
        .unwrap();
    assert_eq!(docs[0].value, json!({"a": "hunter2", "b": "hunter2"}));
}

#[test]
fn the_log_helper_is_refused() {
    let err = render_one("a: 1{{log values.password}}\n", json!({"password": "x"})).unwrap_err();
    assert!(err.to_string().contains("`log`"), "{err}");
}

/// Issue 13, item 7: a map key written from values is tracked like a value,
/// so a Secret whose data keys come from values is seen.
#[test]
fn keys_written_from_values_are_tracked() {
    let e = engine(&[(
        "t.yaml.hbs",
        "kind: Secret\nstringData:\n{{#each values.m}}\n  {{@key}}: fixed\n{{/each}}\n",
    )]);
    let docs = e.render(json!({"values": {"m": {"k": 1}}})).unwrap();
    let paths: Vec<&Vec<String>> = docs[0].from_values.iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        vec![&vec!["stringData".to_string(), "k".to_string()]]
    );
}

/// Issue 13, item 11: deeply nested blocks or subexpressions are refused with
/// an error, not a stack overflow that aborts the process, however the
/// nesting is spelled or hidden from a scan of the text.
#[test]
fn deep_nesting_is_refused_at_compile_time_not_a_stack_overflow() {
    let n = 5000;
    let cases = [
        format!("{}a: 1\n{}", "{{#if x}}".repeat(n), "{{/if}}".repeat(n)),
        format!(
            "{}a: 1\n{}",
            "{{~#each x~}}".repeat(n),
            "{{/each}}".repeat(n)
        ),
        format!("{}a: 1\n{}", "{{#> p}}".repeat(n), "{{/p}}".repeat(n)),
        format!("{}a: 1\n{}", "{{^x}}".repeat(n), "{{/x}}".repeat(n)),
        format!(
            "{}a: 1\n{}",
            "{{#if x}}{{!-- {{/if}} --}}{{! {{/if}} }}\\{{/if}}".repeat(n),
            "{{/if}}".repeat(n)
        ),
        format!(
            "a: {{{{quote {}x{}}}}}\n",
            "(lower ".repeat(n),
            ")".repeat(n)
        ),
        format!(
            "{}a: 1\n{}",
            "{{#if x}}{{else}}".repeat(n),
            "{{/if}}".repeat(n)
        ),
    ];
    for text in cases {
        let result = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                compile_errors(&[("t.yaml.hbs", &text)])
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .join()
            .expect("compiling overflowed the stack");
        assert!(
            result.len() == 1 && result[0].contains("nest more than 64 levels"),
            "{result:?}"
        );
    }
    // 64 levels compile and render.
    let text = format!("{}a: 1\n{}", "{{#if x}}".repeat(64), "{{/if}}".repeat(64));
    let docs = engine(&[("t.yaml.hbs", &text)])
        .render(json!({"x": true}))
        .unwrap();
    assert_eq!(docs[0].value, json!({"a": 1}));
}

/// Issue 13, item 11: Handlebars parses a template in time that grows with
/// its tags times its length; a template past a bound is refused at once,
/// with a hint, instead of taking minutes.
#[test]
fn a_template_too_costly_to_parse_is_refused_quickly() {
    let mut t = String::from("a:\n");
    for i in 0..20_000 {
        t.push_str(&format!("  k{i}: {{{{values.x}}}}\n"));
    }
    let start = std::time::Instant::now();
    let errs = compile_errors(&[("t.yaml.hbs", &t)]);
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
    assert!(
        errs.len() == 1 && errs[0].to_string().contains("split it into partials"),
        "{errs:?}"
    );
}

/// Issue 13, item 9: a chain of partials each including the next twice
/// renders 2^n times; the render of an environment is bounded in helper calls
/// and output, and fails naming the template.
#[test]
fn a_render_that_blows_up_is_stopped_by_its_budget() {
    let n = 30;
    let styles: [fn(usize) -> String; 2] = [
        |i| format!("{{{{> p{i}}}}}"),
        |i| format!("{{{{include \"p{i}\"}}}}"),
    ];
    for call in styles {
        let mut files: Vec<(String, String)> = (0..n)
            .map(|i| {
                let next = call(i + 1);
                (format!("_partials/p{i}.hbs"), format!("{next}{next}"))
            })
            .collect();
        files.push((format!("_partials/p{n}.hbs"), "x".to_string()));
        files.push(("t.yaml.hbs".to_string(), format!("a: {}\n", call(0))));
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let e = engine(&refs);
        let start = std::time::Instant::now();
        let err = e.render(json!({"values": {}})).unwrap_err().to_string();
        assert!(
            err.contains("`t.yaml.hbs`") || err.contains("`_partials/"),
            "{err}"
        );
        assert!(
            err.contains("helper calls")
                || err.contains("include partials more than")
                || err.contains("MiB"),
            "{err}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(60));
    }
    // A huge indentation is an error, not a capacity overflow.
    let err = render_one("a: {{indent 18446744073709551615 \"x\"}}\n", json!({})).unwrap_err();
    assert!(err.to_string().contains("at most 1024 spaces"), "{err}");
}
