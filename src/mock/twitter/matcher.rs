//! Filtered-stream rules matched against a post's text, for the mock stream.
//!
//! X's rule syntax (docs.x.com, "Build a rule"): terms side by side are ANDed,
//! `OR` between them ORs, AND binds first; `-` negates a term or a group;
//! parentheses group; `"…"` is an exact phrase; `#tag` a hashtag; a keyword is
//! a tokenized, case-insensitive match (`cats` matches `#cats` and `Cats!`).
//! Of the `name:value` operators the mock evaluates `lang:`; the others
//! (`is:retweet`, `has:media`, `from:`…) constrain nothing here, negated or not.
//!
//! The mock also writes each post for a rule ([`Expr::witness`]): the words a
//! text needs to satisfy it, so a post it sends names the rules its text
//! really matches.

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// A keyword or `@mention` / `$cashtag` (matched case-insensitively).
    Word(String),
    /// A hashtag without `#`.
    Hashtag(String),
    /// A quoted phrase, its spaces collapsed.
    Phrase(String),
    /// `lang:xx`.
    Lang(String),
    /// An operator the mock does not evaluate.
    Any,
}

/// The post a rule is matched against.
pub(super) struct Post<'a> {
    pub text: &'a str,
    pub lang: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Or,
    Minus,
    Phrase(String),
    Term(String),
}

fn tokenize(rule: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = rule.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                out.push(if c == '(' { Token::Open } else { Token::Close });
            }
            '-' => {
                chars.next();
                out.push(Token::Minus);
            }
            '"' => {
                chars.next();
                let phrase: String = chars.by_ref().take_while(|&c| c != '"').collect();
                out.push(Token::Phrase(phrase));
            }
            _ => {
                let mut term = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    term.push(c);
                    chars.next();
                }
                out.push(if term == "OR" {
                    Token::Or
                } else {
                    Token::Term(term)
                });
            }
        }
    }
    out
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn or(&mut self) -> Expr {
        let mut any = vec![self.and()];
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            any.push(self.and());
        }
        if any.len() == 1 {
            any.remove(0)
        } else {
            Expr::Or(any)
        }
    }

    fn and(&mut self) -> Expr {
        let mut all = Vec::new();
        while let Some(t) = self.peek() {
            if matches!(t, Token::Or | Token::Close) {
                break;
            }
            all.push(self.unary());
        }
        if all.len() == 1 {
            all.remove(0)
        } else {
            Expr::And(all)
        }
    }

    fn unary(&mut self) -> Expr {
        if self.peek() == Some(&Token::Minus) {
            self.at += 1;
            return Expr::Not(Box::new(self.atom()));
        }
        self.atom()
    }

    fn atom(&mut self) -> Expr {
        let Some(token) = self.tokens.get(self.at).cloned() else {
            return Expr::Any;
        };
        self.at += 1;
        match token {
            Token::Open => {
                let inner = self.or();
                if self.peek() == Some(&Token::Close) {
                    self.at += 1;
                }
                inner
            }
            Token::Phrase(p) => Expr::Phrase(collapse(&p)),
            Token::Term(t) => term(&t),
            // A stray `)`, `OR` or `-` (X refuses such rules; the mock's
            // rule endpoint checks them) constrains nothing here.
            Token::Close | Token::Or | Token::Minus => Expr::Any,
        }
    }
}

fn term(t: &str) -> Expr {
    if let Some(tag) = t.strip_prefix('#') {
        return Expr::Hashtag(tag.to_owned());
    }
    match t.split_once(':') {
        Some(("lang", code)) => Expr::Lang(code.to_lowercase()),
        Some((op, _))
            if !op.is_empty() && op.chars().all(|c| c.is_ascii_alphabetic() || c == '_') =>
        {
            Expr::Any
        }
        _ => Expr::Word(t.to_owned()),
    }
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses a rule's value.
pub(super) fn parse(rule: &str) -> Expr {
    let mut p = Parser {
        tokens: tokenize(rule),
        at: 0,
    };
    let mut all = vec![p.or()];
    // Whatever a stray `)` left is ANDed on, as X reads side-by-side terms.
    while p.at < p.tokens.len() {
        p.at += 1;
        all.push(p.or());
    }
    if all.len() == 1 {
        all.remove(0)
    } else {
        Expr::And(all)
    }
}

/// The words of a text as a keyword matches them: split on whatever is not
/// a letter, digit, `_`, `#`, `@` or `$`, lowercased; a `#tag`, `@name` or
/// `$TAG` also gives the bare word.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in text
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '#' | '@' | '$')))
        .filter(|w| !w.is_empty())
    {
        let w = w.to_lowercase();
        let bare = w.trim_start_matches(['#', '@', '$']).to_owned();
        if bare != w && !bare.is_empty() {
            out.push(bare);
        }
        out.push(w);
    }
    out
}

/// The hashtags of a text as X marks them: `#` then letters, digits or `_`,
/// at least one of them not a digit, not inside a word. Each as
/// `(start, end, tag)`, in characters.
pub(super) fn hashtags(text: &str) -> Vec<(usize, usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts =
            chars[i] == '#' && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'));
        if !starts {
            i += 1;
            continue;
        }
        let end = (i + 1..chars.len())
            .find(|&j| !(chars[j].is_alphanumeric() || chars[j] == '_'))
            .unwrap_or(chars.len());
        let tag: String = chars[i + 1..end].iter().collect();
        if tag.chars().any(|c| !c.is_ascii_digit()) {
            out.push((i, end, tag));
        }
        i = end.max(i + 1);
    }
    out
}

impl Expr {
    /// Whether the rule matches `post`.
    pub(super) fn matches(&self, post: &Post<'_>) -> bool {
        self.eval(post, &words(post.text), &hashtags(post.text))
    }

    fn eval(&self, post: &Post<'_>, words: &[String], tags: &[(usize, usize, String)]) -> bool {
        match self {
            Expr::And(all) => all.iter().all(|e| e.eval(post, words, tags)),
            Expr::Or(any) => any.iter().any(|e| e.eval(post, words, tags)),
            // An operator the mock does not evaluate constrains nothing, negated too.
            Expr::Not(inner) if **inner == Expr::Any => true,
            Expr::Not(inner) => !inner.eval(post, words, tags),
            Expr::Word(w) => words.contains(&w.to_lowercase()),
            Expr::Hashtag(h) => tags
                .iter()
                .any(|(_, _, t)| t.to_lowercase() == h.to_lowercase()),
            Expr::Phrase(p) => collapse(&post.text.to_lowercase()).contains(&p.to_lowercase()),
            Expr::Lang(l) => post.lang.eq_ignore_ascii_case(l),
            Expr::Any => true,
        }
    }

    /// What a text needs to satisfy the rule: the words to add (for each
    /// `OR`, the branch `choice` picks, so successive posts take turns;
    /// nothing for a negation) and the language a `lang:` asks for.
    pub(super) fn witness(&self, choice: u64) -> (Vec<String>, Option<String>) {
        let mut words = Vec::new();
        let mut lang = None;
        self.collect(choice, &mut words, &mut lang);
        (words, lang)
    }

    fn collect(&self, choice: u64, words: &mut Vec<String>, lang: &mut Option<String>) {
        match self {
            Expr::And(all) => all.iter().for_each(|e| e.collect(choice, words, lang)),
            Expr::Or(any) if !any.is_empty() => {
                let n = any.len() as u64;
                any[(choice % n) as usize].collect(choice / n, words, lang);
            }
            Expr::Or(_) => {}
            Expr::Not(_) | Expr::Any => {}
            Expr::Word(w) | Expr::Phrase(w) => words.push(w.clone()),
            Expr::Hashtag(h) => words.push(format!("#{h}")),
            Expr::Lang(l) => *lang = Some(l.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(rule: &str, text: &str) -> bool {
        parse(rule).matches(&Post { text, lang: "en" })
    }

    #[test]
    fn keywords_hashtags_phrases_or_and_negation() {
        assert!(m("cats", "I like Cats!"));
        assert!(
            m("cats", "so #cats"),
            "a keyword matches the hashtag's word"
        );
        assert!(!m("cats", "concatenate"), "tokenized, not a substring");
        assert!(m("#F1", "race day #f1"));
        assert!(!m("#F1", "F1 race"), "a hashtag needs the #");
        assert!(m("\"data pipeline\"", "our Data  Pipeline ships"));
        assert!(!m("\"data pipeline\"", "pipeline data"));
        assert!(m("cats dogs", "cats and dogs"));
        assert!(!m("cats dogs", "cats only"));
        assert!(m("cats OR dogs", "dogs only"));
        assert!(m("a b OR c", "c"), "AND binds before OR");
        assert!(!m("a (b OR c)", "c"));
        assert!(m("a (b OR c)", "a c"));
        assert!(!m("cats -dogs", "cats and dogs"));
        assert!(m("cats -(dogs OR birds)", "cats alone"));
        assert!(!m("cats -(dogs OR birds)", "cats birds"));
        assert!(
            m("cats -is:retweet has:media", "cats"),
            "operators the mock does not evaluate"
        );
        assert!(m("cats lang:en", "cats"));
        assert!(!m("cats lang:de", "cats"));
    }

    #[test]
    fn hostile_rules_parse_to_something() {
        for rule in [
            "", "(", ")", "-", "OR", "\"open", "a ) b", "((((", "-(-(-a))", "lang:",
        ] {
            let _ = parse(rule).matches(&Post {
                text: "a b",
                lang: "en",
            });
        }
        assert!(m("a ) b", "a b"));
    }

    #[test]
    fn a_witness_text_matches_its_rule() {
        for rule in [
            "cats",
            "#F1 OR #MotoGP",
            "\"data pipeline\" -spam",
            "(rust OR go) lang:de -is:retweet",
            "@XDevelopers $TSLA",
        ] {
            let e = parse(rule);
            for choice in 0..6 {
                let (words, lang) = e.witness(choice);
                let text = words.join(" ");
                let lang = lang.unwrap_or_else(|| "en".into());
                assert!(
                    e.matches(&Post {
                        text: &text,
                        lang: &lang
                    }),
                    "{rule}: {text}"
                );
            }
        }
    }

    #[test]
    fn hashtags_are_marked_as_x_marks_them() {
        assert_eq!(
            hashtags("go #F1, #9 a#b #_x 😂#Rust"),
            vec![
                (3, 6, "F1".to_owned()),
                (15, 18, "_x".to_owned()),
                (20, 25, "Rust".to_owned())
            ]
        );
    }
}
