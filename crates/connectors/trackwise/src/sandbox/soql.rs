//! The part of SOQL the sandbox understands: `SELECT fields FROM object [WHERE ...]
//! [ORDER BY field [ASC|DESC], ...] [LIMIT n]`, with `AND`, `OR`, `NOT`, parentheses,
//! comparisons and `IN`, and typed literals as Salesforce checks them (datetimes unquoted,
//! `YYYY-MM-DDThh:mm:ss` with `Z` or `+hh:mm`; strings quoted).

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};

/// A parsed statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub fields: Vec<String>,
    pub object: String,
    pub filter: Option<Expr>,
    /// Fields and whether ascending.
    pub order: Vec<(String, bool)>,
    pub limit: Option<usize>,
}

/// A condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(String, Op, Literal),
    In(String, Vec<Literal>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A literal or a field's value, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Time(DateTime<Utc>),
    Date(NaiveDate),
    Number(f64),
    Bool(bool),
    Null,
}

impl Literal {
    /// The type's name as Salesforce's messages spell it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Literal::Text(_) => "string",
            Literal::Time(_) => "dateTime",
            Literal::Date(_) => "date",
            Literal::Number(_) => "number",
            Literal::Bool(_) => "boolean",
            Literal::Null => "null",
        }
    }

    /// Compares two values of one type; `None` when either is null or the types differ.
    pub fn compare(&self, other: &Literal) -> Option<Ordering> {
        match (self, other) {
            (Literal::Text(a), Literal::Text(b)) => Some(a.cmp(b)),
            (Literal::Time(a), Literal::Time(b)) => Some(a.cmp(b)),
            (Literal::Date(a), Literal::Date(b)) => Some(a.cmp(b)),
            (Literal::Number(a), Literal::Number(b)) => a.partial_cmp(b),
            (Literal::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

impl Expr {
    /// Evaluates the condition on a row, given a way to read a field's typed value.
    pub fn matches(&self, value_of: &dyn Fn(&str) -> Literal) -> bool {
        match self {
            Expr::And(a, b) => a.matches(value_of) && b.matches(value_of),
            Expr::Or(a, b) => a.matches(value_of) || b.matches(value_of),
            Expr::Not(inner) => !inner.matches(value_of),
            Expr::In(field, values) => {
                let value = value_of(field);
                values
                    .iter()
                    .any(|candidate| value.compare(candidate) == Some(Ordering::Equal))
            }
            Expr::Compare(field, op, literal) => {
                let value = value_of(field);
                if *literal == Literal::Null || value == Literal::Null {
                    let both_null = value == *literal;
                    return match op {
                        Op::Eq => both_null,
                        Op::Ne => !both_null,
                        _ => false,
                    };
                }
                let Some(ordering) = value.compare(literal) else {
                    return false;
                };
                match op {
                    Op::Eq => ordering == Ordering::Equal,
                    Op::Ne => ordering != Ordering::Equal,
                    Op::Lt => ordering == Ordering::Less,
                    Op::Le => ordering != Ordering::Greater,
                    Op::Gt => ordering == Ordering::Greater,
                    Op::Ge => ordering != Ordering::Less,
                }
            }
        }
    }

    /// Every (field, literal) the condition compares, for type checks.
    pub fn comparisons(&self) -> Vec<(&str, &Literal)> {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                let mut all = a.comparisons();
                all.extend(b.comparisons());
                all
            }
            Expr::Not(inner) => inner.comparisons(),
            Expr::Compare(field, _, literal) => vec![(field.as_str(), literal)],
            Expr::In(field, values) => values.iter().map(|value| (field.as_str(), value)).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Literal(String),
    Symbol(&'static str),
}

/// Parses a statement; the error is the message of a `MALFORMED_QUERY`.
pub fn parse(soql: &str) -> Result<Query, String> {
    let tokens = tokenize(soql)?;
    let mut parser = Parser { tokens, at: 0 };
    let query = parser.query()?;
    if let Some(token) = parser.peek() {
        return Err(format!("unexpected token: '{}'", describe(token)));
    }
    Ok(query)
}

fn tokenize(soql: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = soql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string literal".to_owned()),
                    Some('\\') => {
                        if let Some(next) = chars.get(i + 1) {
                            text.push(*next);
                        }
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        text.push(*other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Text(text));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || ":.+-".contains(chars[i]))
            {
                i += 1;
            }
            tokens.push(Token::Literal(chars[start..i].iter().collect()));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let symbol = match two.as_str() {
                "!=" => Some("!="),
                "<>" => Some("!="),
                "<=" => Some("<="),
                ">=" => Some(">="),
                _ => None,
            };
            if let Some(symbol) = symbol {
                tokens.push(Token::Symbol(symbol));
                i += 2;
                continue;
            }
            let symbol = match c {
                '(' => "(",
                ')' => ")",
                ',' => ",",
                '=' => "=",
                '<' => "<",
                '>' => ">",
                other => return Err(format!("unexpected character '{other}'")),
            };
            tokens.push(Token::Symbol(symbol));
            i += 1;
        }
    }
    Ok(tokens)
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(word) | Token::Literal(word) => word.clone(),
        Token::Text(text) => format!("'{text}'"),
        Token::Symbol(symbol) => (*symbol).to_owned(),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Word(found)) if found.eq_ignore_ascii_case(word) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn expect_keyword(&mut self, word: &str) -> Result<(), String> {
        if self.keyword(word) {
            Ok(())
        } else {
            Err(format!(
                "expecting '{word}', found '{}'",
                self.peek().map(describe).unwrap_or_default()
            ))
        }
    }

    fn symbol(&mut self, symbol: &str) -> bool {
        if self.peek()
            == Some(&Token::Symbol(match symbol {
                "(" => "(",
                ")" => ")",
                "," => ",",
                _ => return false,
            }))
        {
            self.at += 1;
            return true;
        }
        false
    }

    fn name(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(word)) if !is_reserved(&word) => Ok(word),
            other => Err(format!(
                "expecting a name, found '{}'",
                other.as_ref().map(describe).unwrap_or_default()
            )),
        }
    }

    fn query(&mut self) -> Result<Query, String> {
        self.expect_keyword("SELECT")?;
        let mut fields = vec![self.name()?];
        while self.symbol(",") {
            fields.push(self.name()?);
        }
        self.expect_keyword("FROM")?;
        let object = self.name()?;
        let filter = if self.keyword("WHERE") {
            Some(self.or()?)
        } else {
            None
        };
        let mut order = Vec::new();
        if self.keyword("ORDER") {
            self.expect_keyword("BY")?;
            loop {
                let field = self.name()?;
                let ascending = if self.keyword("DESC") {
                    false
                } else {
                    self.keyword("ASC");
                    true
                };
                order.push((field, ascending));
                if !self.symbol(",") {
                    break;
                }
            }
        }
        let limit = if self.keyword("LIMIT") {
            match self.next() {
                Some(Token::Literal(number)) => Some(
                    number
                        .parse::<usize>()
                        .map_err(|_| format!("LIMIT must be a whole number, not {number}"))?,
                ),
                other => {
                    return Err(format!(
                        "expecting a number after LIMIT, found '{}'",
                        other.as_ref().map(describe).unwrap_or_default()
                    ))
                }
            }
        } else {
            None
        };
        Ok(Query {
            fields,
            object,
            filter,
            order,
            limit,
        })
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.factor()?;
        while self.keyword("AND") {
            left = Expr::And(Box::new(left), Box::new(self.factor()?));
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Expr, String> {
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.factor()?)));
        }
        if self.symbol("(") {
            let inner = self.or()?;
            if !self.symbol(")") {
                return Err("expecting ')'".to_owned());
            }
            return Ok(inner);
        }
        let field = self.name()?;
        if self.keyword("IN") {
            if !self.symbol("(") {
                return Err("expecting '(' after IN".to_owned());
            }
            let mut values = vec![self.literal()?];
            while self.symbol(",") {
                values.push(self.literal()?);
            }
            if !self.symbol(")") {
                return Err("expecting ')'".to_owned());
            }
            return Ok(Expr::In(field, values));
        }
        let op = match self.next() {
            Some(Token::Symbol("=")) => Op::Eq,
            Some(Token::Symbol("!=")) => Op::Ne,
            Some(Token::Symbol("<")) => Op::Lt,
            Some(Token::Symbol("<=")) => Op::Le,
            Some(Token::Symbol(">")) => Op::Gt,
            Some(Token::Symbol(">=")) => Op::Ge,
            other => {
                return Err(format!(
                    "expecting an operator, found '{}'",
                    other.as_ref().map(describe).unwrap_or_default()
                ))
            }
        };
        Ok(Expr::Compare(field, op, self.literal()?))
    }

    fn literal(&mut self) -> Result<Literal, String> {
        match self.next() {
            Some(Token::Text(text)) => Ok(Literal::Text(text)),
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("null") => Ok(Literal::Null),
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("false") => {
                Ok(Literal::Bool(false))
            }
            Some(Token::Literal(text)) => literal_value(&text),
            other => Err(format!(
                "expecting a value, found '{}'",
                other.as_ref().map(describe).unwrap_or_default()
            )),
        }
    }
}

fn is_reserved(word: &str) -> bool {
    [
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "ORDER", "BY", "ASC", "DESC", "LIMIT",
        "NULL", "TRUE", "FALSE",
    ]
    .iter()
    .any(|reserved| reserved.eq_ignore_ascii_case(word))
}

/// Reads an unquoted literal: a datetime (`YYYY-MM-DDThh:mm:ss[.sss]` then `Z` or `±hh:mm`),
/// a date, or a number.
fn literal_value(text: &str) -> Result<Literal, String> {
    if text.contains('T') {
        let valid_zone = text.ends_with('Z') || {
            let tail = &text[text.len().saturating_sub(6)..];
            (tail.starts_with('+') || tail.starts_with('-'))
                && tail.as_bytes().get(3) == Some(&b':')
        };
        return DateTime::parse_from_rfc3339(text)
            .ok()
            .filter(|_| valid_zone)
            .map(|time| Literal::Time(time.with_timezone(&Utc)))
            .ok_or_else(|| {
                format!(
                    "line 1:0 no viable alternative at character ' ': '{text}' is not a valid \
                     dateTime; write YYYY-MM-DDThh:mm:ssZ or YYYY-MM-DDThh:mm:ss+hh:mm"
                )
            });
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Literal::Date(date));
    }
    text.parse::<f64>()
        .map(Literal::Number)
        .map_err(|_| format!("'{text}' is not a valid value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyset_statement_parses_and_evaluates() {
        let query = parse(
            "SELECT Id, Name FROM X__c WHERE SystemModstamp >= 2024-01-01T00:00:00Z AND \
             (SystemModstamp > 2024-01-02T00:00:00Z OR (SystemModstamp = 2024-01-02T00:00:00Z \
             AND Id > 'a2')) ORDER BY SystemModstamp ASC, Id LIMIT 10",
        )
        .unwrap();
        assert_eq!(query.fields, ["Id", "Name"]);
        assert_eq!(
            query.order,
            [("SystemModstamp".to_owned(), true), ("Id".to_owned(), true)]
        );
        assert_eq!(query.limit, Some(10));
        let row = |stamp: &str, id: &str| {
            let stamp = Literal::Time(stamp.parse().unwrap());
            let id = Literal::Text(id.to_owned());
            move |field: &str| match field {
                "SystemModstamp" => stamp.clone(),
                "Id" => id.clone(),
                _ => Literal::Null,
            }
        };
        let filter = query.filter.unwrap();
        assert!(filter.matches(&row("2024-01-02T00:00:00Z", "a3")));
        assert!(!filter.matches(&row("2024-01-02T00:00:00Z", "a1")));
        assert!(filter.matches(&row("2024-01-03T00:00:00Z", "a0")));
        assert!(!filter.matches(&row("2024-01-01T23:30:00Z", "a9")));
        assert!(!filter.matches(&row("2023-12-31T00:00:00Z", "a9")));
    }

    #[test]
    fn datetimes_must_carry_a_zone_with_a_colon() {
        assert!(
            parse("SELECT Id FROM X WHERE SystemModstamp > 2024-01-01T00:00:00.000+0000").is_err()
        );
        assert!(parse("SELECT Id FROM X WHERE SystemModstamp > 2024-01-01T00:00:00").is_err());
        // A `+` sent unencoded in a URL arrives as a space.
        assert!(
            parse("SELECT Id FROM X WHERE SystemModstamp > 2024-01-01T00:00:00 01:00").is_err()
        );
        assert!(parse("SELECT Id FROM X WHERE Id IN ('a', 'b') AND IsDeleted = true").is_ok());
    }
}
