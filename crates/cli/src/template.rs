//! A small subset of Go's text/template, enough for docker's `--format` uses: text, `{{.A.B}}`,
//! `{{.}}`, functions `json`, `index`, `upper`, `lower`, `join`, `title`, `println`, pipelines
//! with `|`, `{{range X}}…{{end}}`, `{{if X}}…{{else}}…{{end}}`, and the `table` prefix (a header
//! row and tab-aligned columns, like docker's formatter). Values are JSON values, printed the way
//! Go prints them (`map[k:v]`, `[a b]`, `<no value>` for a missing key).

use serde_json::Value;

/// Why a template didn't parse or execute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template parsing error: {0}")]
    Parse(String),
    #[error("template: executing: {0}")]
    Exec(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// `.A.B` (empty path: `.`)
    Field(Vec<String>),
    Str(String),
    Num(f64),
    Func(String),
}

type Pipeline = Vec<Vec<Arg>>;

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    Range(Pipeline, Vec<Node>),
    If(Pipeline, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
    /// Started with `table`: print a header and align columns.
    pub table: bool,
}

fn lex_args(src: &str) -> Result<Pipeline, TemplateError> {
    let mut pipeline = vec![Vec::new()];
    let mut chars = src.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '|' {
            chars.next();
            pipeline.push(Vec::new());
        } else if c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => {
                        return Err(TemplateError::Parse(format!(
                            "unterminated string in {{{{{src}}}}}"
                        )))
                    }
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(o) => s.push(o),
                        None => return Err(TemplateError::Parse("unterminated escape".into())),
                    },
                    Some(o) => s.push(o),
                }
            }
            pipeline.last_mut().expect("never empty").push(Arg::Str(s));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '|' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            let arg = if word == "." {
                Arg::Field(Vec::new())
            } else if let Some(path) = word.strip_prefix('.') {
                Arg::Field(path.split('.').map(String::from).collect())
            } else if let Ok(n) = word.parse::<f64>() {
                Arg::Num(n)
            } else if word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                Arg::Func(word)
            } else {
                return Err(TemplateError::Parse(format!(
                    "unexpected {word:?} in command"
                )));
            };
            pipeline.last_mut().expect("never empty").push(arg);
        }
    }
    if pipeline.iter().any(Vec::is_empty) {
        return Err(TemplateError::Parse(format!(
            "missing value for command in {{{{{src}}}}}"
        )));
    }
    Ok(pipeline)
}

enum Tok {
    Text(String),
    Action(String),
}

fn tokenize(src: &str) -> Result<Vec<Tok>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("{{") {
        if i > 0 {
            out.push(Tok::Text(rest[..i].to_string()));
        }
        let after = &rest[i + 2..];
        let j = after
            .find("}}")
            .ok_or_else(|| TemplateError::Parse("unclosed action".to_string()))?;
        out.push(Tok::Action(after[..j].trim().to_string()));
        rest = &after[j + 2..];
    }
    if !rest.is_empty() {
        out.push(Tok::Text(rest.to_string()));
    }
    Ok(out)
}

enum Stop {
    Eof,
    End,
    Else,
}

fn parse_nodes(
    toks: &mut std::iter::Peekable<std::vec::IntoIter<Tok>>,
) -> Result<(Vec<Node>, Stop), TemplateError> {
    let mut nodes = Vec::new();
    while let Some(t) = toks.next() {
        match t {
            Tok::Text(s) => nodes.push(Node::Text(s)),
            Tok::Action(a) => {
                if a == "end" {
                    return Ok((nodes, Stop::End));
                }
                if a == "else" {
                    return Ok((nodes, Stop::Else));
                }
                if let Some(rest) = a.strip_prefix("range ") {
                    let p = lex_args(rest)?;
                    let (body, end) = parse_nodes(toks)?;
                    if !matches!(end, Stop::End) {
                        return Err(TemplateError::Parse("range without end".into()));
                    }
                    nodes.push(Node::Range(p, body));
                } else if let Some(rest) = a.strip_prefix("if ") {
                    let p = lex_args(rest)?;
                    let (then, end) = parse_nodes(toks)?;
                    let otherwise = match end {
                        Stop::End => Vec::new(),
                        Stop::Else => {
                            let (o, e2) = parse_nodes(toks)?;
                            if !matches!(e2, Stop::End) {
                                return Err(TemplateError::Parse("if without end".into()));
                            }
                            o
                        }
                        Stop::Eof => return Err(TemplateError::Parse("if without end".into())),
                    };
                    nodes.push(Node::If(p, then, otherwise));
                } else {
                    nodes.push(Node::Action(lex_args(&a)?));
                }
            }
        }
    }
    Ok((nodes, Stop::Eof))
}

impl Template {
    /// Parse a `--format` value; `\t` and `\n` typed literally are turned into tab and newline,
    /// as docker does.
    pub fn parse(format: &str) -> Result<Self, TemplateError> {
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, format),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut toks = tokenize(&body)?.into_iter().peekable();
        let (nodes, end) = parse_nodes(&mut toks)?;
        if !matches!(end, Stop::Eof) {
            return Err(TemplateError::Parse(
                "unexpected {{end}} or {{else}}".into(),
            ));
        }
        Ok(Self { nodes, table })
    }

    /// Render against one value.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        exec(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

fn exec(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => out.push_str(&go_string(&eval_pipeline(p, dot)?)),
            Node::Range(p, body) => match eval_pipeline(p, dot)? {
                Value::Array(items) => {
                    for it in &items {
                        exec(body, it, out)?;
                    }
                }
                Value::Object(m) => {
                    for v in m.values() {
                        exec(body, v, out)?;
                    }
                }
                Value::Null => {}
                other => {
                    return Err(TemplateError::Exec(format!(
                        "range can't iterate over {}",
                        go_string(&other)
                    )))
                }
            },
            Node::If(p, then, otherwise) => {
                if truthy(&eval_pipeline(p, dot)?) {
                    exec(then, dot, out)?;
                } else {
                    exec(otherwise, dot, out)?;
                }
            }
        }
    }
    Ok(())
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Marker for a missing map key (Go prints `<no value>`).
const NO_VALUE: &str = "\u{0}<no value>";

fn field(dot: &Value, path: &[String]) -> Value {
    let mut cur = dot.clone();
    for p in path {
        cur = match cur {
            Value::Object(mut m) => m
                .remove(p)
                .unwrap_or_else(|| Value::String(NO_VALUE.into())),
            _ => Value::String(NO_VALUE.into()),
        };
    }
    cur
}

fn eval_pipeline(p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
    let mut prev: Option<Value> = None;
    for cmd in p {
        prev = Some(eval_command(cmd, dot, prev)?);
    }
    Ok(prev.unwrap_or(Value::Null))
}

fn eval_arg(a: &Arg, dot: &Value) -> Result<Value, TemplateError> {
    Ok(match a {
        Arg::Field(path) => field(dot, path),
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Num(n) => serde_json::Number::from_f64(*n)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Arg::Func(f) => call(f, Vec::new())?,
    })
}

fn eval_command(cmd: &[Arg], dot: &Value, piped: Option<Value>) -> Result<Value, TemplateError> {
    match &cmd[0] {
        Arg::Func(f) => {
            let mut args = cmd[1..]
                .iter()
                .map(|a| eval_arg(a, dot))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(p) = piped {
                args.push(p);
            }
            call(f, args)
        }
        a if cmd.len() == 1 && piped.is_none() => eval_arg(a, dot),
        _ => Err(TemplateError::Exec(
            "can't give arguments to a non-function".into(),
        )),
    }
}

fn call(f: &str, args: Vec<Value>) -> Result<Value, TemplateError> {
    let one = |args: &[Value]| -> Result<Value, TemplateError> {
        match args {
            [v] => Ok(v.clone()),
            _ => Err(TemplateError::Exec(format!(
                "wrong number of args for {f}: want 1 got {}",
                args.len()
            ))),
        }
    };
    Ok(match f {
        "json" => {
            let v = one(&args)?;
            let v = if v.as_str() == Some(NO_VALUE) {
                Value::Null
            } else {
                v
            };
            Value::String(
                serde_json::to_string(&v).map_err(|e| TemplateError::Exec(e.to_string()))?,
            )
        }
        "upper" => Value::String(go_string(&one(&args)?).to_uppercase()),
        "lower" => Value::String(go_string(&one(&args)?).to_lowercase()),
        "title" => {
            let s = go_string(&one(&args)?);
            let mut c = s.chars();
            Value::String(
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default(),
            )
        }
        "println" => Value::String(format!(
            "{}\n",
            args.iter().map(go_string).collect::<Vec<_>>().join(" ")
        )),
        "index" => {
            let mut it = args.into_iter();
            let mut cur = it
                .next()
                .ok_or_else(|| TemplateError::Exec("index of nothing".into()))?;
            for k in it {
                cur = match (cur, k) {
                    (Value::Object(mut m), Value::String(k)) => m
                        .remove(&k)
                        .unwrap_or_else(|| Value::String(NO_VALUE.into())),
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n
                            .as_u64()
                            .and_then(|i| usize::try_from(i).ok())
                            .unwrap_or(usize::MAX);
                        a.get(i).cloned().ok_or_else(|| {
                            TemplateError::Exec(format!("index out of range: {i}"))
                        })?
                    }
                    (c, k) => {
                        return Err(TemplateError::Exec(format!(
                            "can't index item of type {} with {}",
                            kind(&c),
                            go_string(&k)
                        )))
                    }
                };
            }
            cur
        }
        "join" => match args.as_slice() {
            [Value::Array(a), Value::String(sep)] => {
                Value::String(a.iter().map(go_string).collect::<Vec<_>>().join(sep))
            }
            _ => {
                return Err(TemplateError::Exec(
                    "join wants a list and a separator".into(),
                ))
            }
        },
        other => {
            return Err(TemplateError::Parse(format!(
                "function {other:?} not defined"
            )))
        }
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

/// Print a value the way Go's `fmt` prints the decoded equivalent.
pub fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (_, Some(u)) => u.to_string(),
            _ => n.as_f64().map(|f| format!("{f}")).unwrap_or_default(),
        },
        Value::String(s) if s == NO_VALUE => "<no value>".to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", go_string(&m[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Align tab-separated cells into columns like docker's tabwriter (min width 10, padding 3).
pub fn align(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for l in &lines {
        // The last cell of a line isn't a column cell: it isn't padded.
        for (i, c) in l.iter().enumerate().take(l.len().saturating_sub(1)) {
            let w = c.chars().count();
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(w);
        }
    }
    let mut out = String::new();
    for l in &lines {
        let last = l.len().saturating_sub(1);
        for (i, c) in l.iter().enumerate() {
            out.push_str(c);
            if i < last {
                let w = (widths[i] + 3).max(10);
                out.push_str(&" ".repeat(w - c.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

/// Render rows: with `table`, a header (the template run against `header`) and aligned
/// columns; otherwise one rendered line per row.
pub fn render_rows(t: &Template, header: &Value, rows: &[Value]) -> Result<String, TemplateError> {
    let mut text = String::new();
    if t.table {
        text.push_str(&t.render(header)?);
        text.push('\n');
    }
    for r in rows {
        text.push_str(&t.render(r)?);
        text.push('\n');
    }
    Ok(if t.table { align(&text) } else { text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn fields_and_text() {
        let v = json!({"Name": "data", "Labels": {"b": "2", "a": "1"}, "Opts": null, "N": 3, "L": ["x", "y"]});
        assert_eq!(r("name={{.Name}}!", &v), "name=data!");
        assert_eq!(r("{{.Labels}}", &v), "map[a:1 b:2]");
        assert_eq!(r("{{.Labels.a}}", &v), "1");
        assert_eq!(r("{{.Missing}}", &v), "<no value>");
        assert_eq!(r("{{.Opts}}", &v), "<nil>");
        assert_eq!(r("{{.N}} {{.L}}", &v), "3 [x y]");
    }

    #[test]
    fn functions_and_pipes() {
        let v = json!({"Name": "data", "Labels": {"com.x": "v"}, "L": ["a", "b"]});
        assert_eq!(r("{{json .Labels}}", &v), r#"{"com.x":"v"}"#);
        assert_eq!(r("{{json .}}", &json!({"a": 1})), r#"{"a":1}"#);
        assert_eq!(r(r#"{{index .Labels "com.x"}}"#, &v), "v");
        assert_eq!(r("{{.Name | upper}}", &v), "DATA");
        assert_eq!(r("{{upper .Name}}{{lower \"X\"}}", &v), "DATAx");
        assert_eq!(r(r#"{{join .L ","}}"#, &v), "a,b");
        assert_eq!(r("{{.Name | json}}", &v), "\"data\"");
        assert_eq!(r("{{title .Name}}", &v), "Data");
    }

    #[test]
    fn range_and_if() {
        let v = json!({"L": ["a", "b"], "E": [], "T": true});
        assert_eq!(r("{{range .L}}<{{.}}>{{end}}", &v), "<a><b>");
        assert_eq!(r("{{if .E}}yes{{else}}no{{end}}", &v), "no");
        assert_eq!(r("{{if .T}}yes{{end}}", &v), "yes");
    }

    #[test]
    fn errors() {
        assert!(Template::parse("{{.Name").is_err());
        assert!(Template::parse("{{range .L}}x").is_err());
        assert!(Template::parse("{{end}}").is_err());
        assert!(Template::parse("{{nosuch .X}}")
            .unwrap()
            .render(&json!({}))
            .is_err());
        assert!(Template::parse("{{index .X 1}}")
            .unwrap()
            .render(&json!({"X": "s"}))
            .is_err());
    }

    #[test]
    fn tables_align_like_docker() {
        let t = Template::parse("table {{.Driver}}\\t{{.Name}}").unwrap();
        assert!(t.table);
        let header = json!({"Driver": "DRIVER", "Name": "VOLUME NAME"});
        let rows = vec![
            json!({"Driver": "local", "Name": "a"}),
            json!({"Driver": "local", "Name": "bb"}),
        ];
        let out = render_rows(&t, &header, &rows).unwrap();
        assert_eq!(out, "DRIVER    VOLUME NAME\nlocal     a\nlocal     bb\n");
        let plain = Template::parse("{{.Name}}").unwrap();
        assert_eq!(render_rows(&plain, &header, &rows).unwrap(), "a\nbb\n");
        assert_eq!(
            align("longer-than-ten\tx\ny\tz\n"),
            "longer-than-ten   x\ny                 z\n"
        );
    }
}
