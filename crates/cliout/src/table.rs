//! `-w table`: the rendering of the olekukonko/tablewriter version etcdctl 3.4 vendors, with the
//! settings etcdctl uses (borders, centred upper-case headers, right-aligned cells, cells longer
//! than 30 columns word-wrapped).

const MAX_CELL_WIDTH: usize = 30;

fn width(s: &str) -> usize {
    s.chars().count()
}

/// Renders `rows` under `headers` (already upper-case).
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|h| width(h).min(MAX_CELL_WIDTH))
        .collect();
    // Cells are measured and wrapped row by row, each against the column width known so far:
    // the order matters, as it does in tablewriter.
    let mut cells: Vec<Vec<Vec<String>>> = Vec::with_capacity(rows.len());
    for row in rows {
        let mut lines_of_row = Vec::with_capacity(row.len());
        for (col, text) in row.iter().enumerate() {
            if col >= widths.len() {
                widths.push(0);
            }
            let w = width(text).min(MAX_CELL_WIDTH);
            if widths[col] < w {
                widths[col] = w;
            }
            let lines = wrap_string(text, widths[col]);
            let longest = lines.iter().map(|l| width(l)).max().unwrap_or(0);
            if longest > widths[col] {
                widths[col] = longest;
            }
            lines_of_row.push(lines);
        }
        cells.push(lines_of_row);
    }

    let mut out = String::new();
    let line = {
        let mut l = String::from("+");
        for w in &widths {
            l.push_str(&"-".repeat(w + 2));
            l.push('+');
        }
        l.push('\n');
        l
    };
    out.push_str(&line);
    out.push('|');
    for (col, w) in widths.iter().enumerate() {
        let h = headers.get(col).copied().unwrap_or("");
        out.push(' ');
        out.push_str(&center(h, *w));
        out.push_str(" |");
    }
    out.push('\n');
    out.push_str(&line);
    for row in &cells {
        let height = row.iter().map(Vec::len).max().unwrap_or(0);
        for x in 0..height {
            out.push('|');
            for (col, lines) in row.iter().enumerate() {
                // Shorter cells are padded with "  " lines, as tablewriter does.
                let text = lines.get(x).map(String::as_str).unwrap_or("  ");
                out.push(' ');
                out.push_str(&pad_left(text, widths[col]));
                out.push_str(" |");
            }
            out.push('\n');
        }
    }
    out.push_str(&line);
    out
}

fn center(s: &str, w: usize) -> String {
    let gap = w.saturating_sub(width(s));
    let left = gap / 2;
    format!("{}{s}{}", " ".repeat(left), " ".repeat(gap - left))
}

fn pad_left(s: &str, w: usize) -> String {
    format!("{}{s}", " ".repeat(w.saturating_sub(width(s))))
}

/// tablewriter's `WrapString`: words (split on single spaces) broken into lines of at most `lim`
/// columns with minimum raggedness; a word longer than `lim` raises the limit.
fn wrap_string(s: &str, lim: usize) -> Vec<String> {
    let replaced = s.replace('\n', " ");
    let words: Vec<&str> = replaced.split(' ').collect();
    let lim = words.iter().map(|w| width(w)).fold(lim, usize::max);
    wrap_words(&words, 1, lim, 100_000)
        .into_iter()
        .map(|line| line.join(" "))
        .collect()
}

/// tablewriter's `WrapWords`: dynamic programming over break points, cost = squared slack.
fn wrap_words<'a>(words: &[&'a str], spc: usize, lim: usize, pen: i64) -> Vec<Vec<&'a str>> {
    let n = words.len();
    if n == 0 {
        return vec![];
    }
    let mut length = vec![vec![0usize; n]; n];
    for i in 0..n {
        length[i][i] = width(words[i]);
        for j in i + 1..n {
            length[i][j] = length[i][j - 1] + spc + width(words[j]);
        }
    }
    let mut nbrk = vec![0usize; n];
    let mut cost = vec![i64::from(i32::MAX); n];
    for i in (0..n).rev() {
        if length[i][n - 1] <= lim {
            cost[i] = 0;
            nbrk[i] = n;
        } else {
            for j in i + 1..n {
                let d = lim as i64 - length[i][j - 1] as i64;
                let mut c = d * d + cost[j];
                if length[i][j - 1] > lim {
                    c += pen;
                }
                if c < cost[i] {
                    cost[i] = c;
                    nbrk[i] = j;
                }
            }
        }
    }
    let mut lines = vec![];
    let mut i = 0;
    while i < n {
        let next = nbrk[i].max(i + 1);
        lines.push(words[i..next].to_vec());
        i = next;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_etcdctl_endpoint_health() {
        let t = render(
            &["ENDPOINT", "HEALTH", "TOOK", "ERROR"],
            &[
                vec![
                    "127.0.0.1:22379".into(),
                    "true".into(),
                    "6.09601ms".into(),
                    "".into(),
                ],
                vec![
                    "127.0.0.1:1".into(),
                    "false".into(),
                    "1.000994066s".into(),
                    "context deadline exceeded".into(),
                ],
            ],
        );
        let want = "\
+-----------------+--------+--------------+---------------------------+
|    ENDPOINT     | HEALTH |     TOOK     |           ERROR           |
+-----------------+--------+--------------+---------------------------+
| 127.0.0.1:22379 |   true |    6.09601ms |                           |
|     127.0.0.1:1 |  false | 1.000994066s | context deadline exceeded |
+-----------------+--------+--------------+---------------------------+
";
        assert_eq!(t, want);
    }

    #[test]
    fn empty_tables_keep_their_frame() {
        let t = render(&["ENDPOINT", "ID"], &[]);
        assert_eq!(
            t,
            "+----------+----+\n| ENDPOINT | ID |\n+----------+----+\n+----------+----+\n"
        );
    }

    #[test]
    fn long_cells_wrap_at_thirty_columns() {
        let t = render(
            &["ERRORS"],
            &[vec!["memberID:10276657743932975437 alarm:NOSPACE".into()]],
        );
        let want = "\
+--------------------------------+
|             ERRORS             |
+--------------------------------+
|  memberID:10276657743932975437 |
|                  alarm:NOSPACE |
+--------------------------------+
";
        assert_eq!(t, want);
    }
}
