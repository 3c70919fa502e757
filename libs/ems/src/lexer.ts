/**
 * PowerShell argument-mode lexing, as far as Exchange transport one-liners need it: bare
 * words, '…' and "…" strings (and the typographic quotes PowerShell also accepts, which
 * blog posts are full of), `-Param` / `-Param:value` with -, – or — as the dash, $true,
 * $false, $null, commas, pipes, @( ) arrays and @{ } hashtables. No variables, no
 * subexpressions, no script blocks: a line that needs them is refused, never guessed at.
 */
import { EmsError } from './errors.ts';

export type Op = '|' | ',' | ';' | '=' | '@(' | '@{' | ')' | '}' | '-';
type TokenBody =
  | { t: 'word'; v: string; quoted: boolean; raw: string }
  | { t: 'param'; name: string; colon: boolean; raw: string }
  | { t: 'var'; v: boolean | null; raw: string }
  /** `-` on its own is an operator only in web-mangled text (`Get - ReceiveConnector`). */
  | { t: 'op'; v: Op; raw: string };
/** `space`: whitespace came before the token (needed to print a line back faithfully). */
export type Token = TokenBody & { space: boolean };

const DOUBLE = '"\u201C\u201D\u201E'; // " “ ” „
const SINGLE = "'\u2018\u2019\u201A\u201B"; // ' ‘ ’ ‚ ‛
const DASHES = '-\u2013\u2014\u2015'; // - – — ―
const isQuote = (c: string | undefined) => c !== undefined && (DOUBLE.includes(c) || SINGLE.includes(c));
const isSpace = (c: string | undefined) => c !== undefined && /\s/.test(c);

function escaped(c: string | undefined): string {
  return c === 'n' ? '\n' : c === 't' ? '\t' : c === '0' ? '\0' : (c ?? '');
}

/** Reads a quoted string starting at `i`; a doubled closing quote stands for itself. */
function readQuoted(line: string, i: number): { v: string; end: number } {
  const double = DOUBLE.includes(line[i]!);
  const closers = double ? DOUBLE : SINGLE;
  let v = '';
  for (let j = i + 1; j < line.length; j++) {
    const c = line[j]!;
    if (closers.includes(c)) {
      if (!closers.includes(line[j + 1] ?? '\0')) return { v, end: j + 1 };
      v += c;
      j++;
    } else if (double && c === '`') {
      v += escaped(line[++j]);
    } else if (double && c === '$' && /[A-Za-z_{(]/.test(line[j + 1] ?? '')) {
      // PowerShell would expand it; we cannot, and a silently different value is worse than an error.
      throw new EmsError(`variables are not expanded in "${line.slice(i + 1, j + 12)}…"; use single quotes for a literal $`);
    } else {
      v += c;
    }
  }
  throw new EmsError(`missing closing quote for the string starting ${line.slice(i, i + 24)}`);
}

export function tokenize(line: string): Token[] {
  const out: Token[] = [];
  const brackets: string[] = []; // open @( and @{, innermost last
  let space = true;
  let i = 0;
  const push = (token: TokenBody, length: number) => {
    out.push({ ...token, space });
    space = false;
    i += length;
  };
  while (i < line.length) {
    const c = line[i]!;
    const inHash = brackets.at(-1) === '{';
    if (c === '\n' && brackets.length > 0) {
      push({ t: 'op', v: ';', raw: ';' }, 1); // a newline separates hashtable entries and array items
      space = true;
    } else if (isSpace(c) || (c === '`' && (i + 1 === line.length || line[i + 1] === '\n'))) {
      space = true;
      i++;
    } else if ('|,;)}'.includes(c) || (c === '=' && inHash)) {
      if (c === ')' || c === '}') {
        if (brackets.pop() !== (c === ')' ? '(' : '{')) throw new EmsError(`unexpected "${c}"`);
      }
      push({ t: 'op', v: c as Op, raw: c }, 1);
    } else if (c === '@' && (line[i + 1] === '(' || line[i + 1] === '{')) {
      brackets.push(line[i + 1]!);
      push({ t: 'op', v: `@${line[i + 1]}` as Op, raw: `@${line[i + 1]}` }, 2);
    } else if (c === '(') {
      throw new EmsError('(…) subexpressions are not supported; write the value itself');
    } else if (c === '{') {
      throw new EmsError('script blocks { … } are not supported (Where-Object, ForEach-Object)');
    } else if (DASHES.includes(c) && (i + 1 === line.length || isSpace(line[i + 1]))) {
      push({ t: 'op', v: '-', raw: c }, 1);
    } else if (DASHES.includes(c) && /[A-Za-z_]/.test(line[i + 1]!)) {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(line.slice(i + 1))![0];
      const colon = line[i + 1 + name.length] === ':';
      push({ t: 'param', name, colon, raw: line.slice(i, i + 1 + name.length + (colon ? 1 : 0)) }, 1 + name.length + (colon ? 1 : 0));
    } else if (c === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)/.exec(line.slice(i));
      const name = m?.[1]!.toLowerCase();
      if (name !== 'true' && name !== 'false' && name !== 'null') throw new EmsError(`variables are not supported (${m ? m[0] : '$'}); write the value itself`);
      push({ t: 'var', v: name === 'null' ? null : name === 'true', raw: m![0] }, m![0].length);
    } else {
      // A word: bare, quoted, or both run together ("a"b is one argument in PowerShell).
      const start = i;
      let v = '';
      let j = i;
      while (j < line.length) {
        const ch = line[j]!;
        if (isSpace(ch) || '|,;()}{'.includes(ch) || (ch === '=' && inHash)) break;
        if (isQuote(ch)) {
          const q = readQuoted(line, j);
          v += q.v;
          j = q.end;
        } else if (ch === '`') {
          v += escaped(line[j + 1]);
          j += 2;
        } else {
          v += ch;
          j++;
        }
      }
      push({ t: 'word', v, quoted: isQuote(c), raw: line.slice(start, j) }, j - start);
    }
  }
  if (brackets.length > 0) throw new EmsError(`missing closing "${brackets.at(-1) === '(' ? ')' : '}'}"`);
  return out;
}

/**
 * Removes `#` and `<# … #>` comments outside strings, and says whether the text stops
 * inside a string or an unclosed @( / @{ (so the next line belongs to it).
 */
export function stripComments(text: string): { code: string; open: boolean } {
  let code = '';
  let quote: '' | 'd' | 's' = '';
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      code += c;
      if (c === '`' && quote === 'd') code += text[++i] ?? '';
      else if ((quote === 'd' ? DOUBLE : SINGLE).includes(c)) quote = '';
      continue;
    }
    if (c === '`') {
      code += c + (text[++i] ?? '');
    } else if (c === '<' && text[i + 1] === '#') {
      const end = text.indexOf('#>', i + 2);
      if (end < 0) return { code, open: true };
      code += ' ';
      i = end + 1;
    } else if (c === '#' && (i === 0 || /[\s|;,]/.test(text[i - 1]!))) {
      const nl = text.indexOf('\n', i);
      if (nl < 0) break;
      i = nl - 1;
    } else {
      if (isQuote(c)) quote = DOUBLE.includes(c) ? 'd' : 's';
      if (c === '@' && (text[i + 1] === '(' || text[i + 1] === '{')) depth++;
      else if ((c === ')' || c === '}') && depth > 0) depth--;
      code += c;
    }
  }
  return { code, open: quote !== '' || depth > 0 };
}

/** `[PS] C:\>` or `PS C:\Users\admin>`: copied from an article along with the command. */
export function stripPrompt(line: string): string {
  return line.replace(/^\s*(?:\[PS\]\s*|PS\s+)?[A-Za-z]:\\[^>\n]*>\s*/, '');
}

/**
 * Script text to one line per command. A line continues onto the next after a backtick,
 * a trailing `|` or `,`, inside a string or @( ) / @{ }, and (for text copied from web
 * pages) after a lone trailing dash or when the next line starts with a -Parameter.
 */
export function splitEmsScript(text: string): string[] {
  const lines: string[] = [];
  let acc = '';
  let state: 'none' | 'open' | 'continued' | 'complete' = 'none';
  for (const raw of text.split(/\r?\n/)) {
    if (state === 'complete' && /^\s*[-\u2013\u2014\u2015][A-Za-z]/.test(raw)) state = 'continued';
    if (state === 'complete') {
      lines.push(acc);
      state = 'none';
    }
    const joined = state === 'none' ? stripPrompt(raw) : state === 'open' ? `${acc}\n${raw}` : `${acc} ${raw.trim()}`;
    const { code, open } = stripComments(joined);
    if (open) {
      acc = joined;
      state = 'open';
      continue;
    }
    const body = code.trim();
    if (body === '') {
      state = 'none';
    } else if (body.endsWith('`')) {
      acc = body.slice(0, -1).trimEnd();
      state = 'continued';
    } else {
      acc = body;
      state = /[|,]$/.test(body) || /\s[-\u2013\u2014\u2015]$/.test(body) ? 'continued' : 'complete';
    }
  }
  if (state !== 'none' && acc.trim() !== '') lines.push(acc.trim());
  return lines;
}
