/* tests/test-drift-corrupt.c: spans, corruptions and the AUROC of the drift
 * evaluation (tests/drift-corrupt.c).
 *
 * Expectations are worked out by hand: RFC 4648's base64 vectors, reversal
 * and cipher of short strings, AUROCs of small score sets counted pair by
 * pair.  Where the result is random, the test checks what must hold for any
 * seed (a permutation of the words, exactly k words replaced, exactly L
 * codepoints of valid UTF-8), checks that a seed gives the same result
 * twice, and that seeds between them reach every outcome that is allowed. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>

#include "drift-corrupt.h"
#include "tap.h"

static gsl_rng *rng(unsigned long seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r) {
        printf("Bail out! gsl_rng_alloc failed\n");
        exit(1);
    }
    gsl_rng_set(r, seed);
    return r;
}

static int str_eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* the words of s (split at single spaces), sorted, joined by '|': equal for
 * two strings exactly when they hold the same multiset of words */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *word_multiset(const char *s)
{
    size_t n = strlen(s);
    char *buf = malloc(n + 1), *out = malloc(n + 2), *w[256];
    int nw = 0;
    memcpy(buf, s, n + 1);
    for (char *t = strtok(buf, " "); t && nw < 256; t = strtok(NULL, " "))
        w[nw++] = t;
    qsort(w, (size_t)nw, sizeof *w, cmp_str);
    out[0] = '\0';
    for (int i = 0; i < nw; i++) {
        strcat(out, w[i]);
        strcat(out, "|");
    }
    free(buf);
    return out;
}

/* ---------------------------------------------------------------- UTF-8 */

static void test_utf8(void)
{
    ok(dc_utf8_len("") == 0 && dc_utf8_len("hello") == 5, "length of ASCII");
    ok(dc_utf8_len("h\xc3\xa9llo") == 5, "h\xc3\xa9llo: 5 codepoints in 6 bytes");
    ok(dc_utf8_len("\xe6\x97\xa5\xe6\x9c\xac") == 2 && dc_utf8_len("a\xf0\x9f\x98\x80" "b") == 3,
       "3- and 4-byte characters count once");
    ok(dc_utf8_offset("h\xc3\xa9llo", 2) == 3 && dc_utf8_offset("h\xc3\xa9llo", 0) == 0 &&
           dc_utf8_offset("h\xc3\xa9llo", 9) == 6,
       "offset of 2 codepoints is 3 bytes; 0 is 0; past the end is the length");
    char s[] = "h\xc3\xa9llo";
    ok(str_eq(dc_utf8_truncate(s, 2), "h\xc3\xa9"), "truncate to 2 keeps the whole \xc3\xa9");
    char t[] = "abc";
    ok(str_eq(dc_utf8_truncate(t, 7), "abc"), "truncating to more than the length keeps all");

    ok(dc_utf8_valid("") && dc_utf8_valid("h\xc3\xa9llo \xe2\x80\x94 \xf0\x9f\x98\x80"),
       "valid UTF-8 is valid");
    ok(!dc_utf8_valid("\xc3") && !dc_utf8_valid("\xc3\x28") && !dc_utf8_valid("\x80"),
       "truncated sequence, bad continuation, lone continuation byte: invalid");
    ok(!dc_utf8_valid("\xc0\xaf") && !dc_utf8_valid("\xe0\x80\xaf"), "overlong forms are invalid");
    ok(!dc_utf8_valid("\xed\xa0\x80") && !dc_utf8_valid("\xf4\x90\x80\x80") &&
           !dc_utf8_valid("\xff"),
       "surrogates, codepoints above U+10FFFF and 0xFF are invalid");
}

/* ---------------------------------------------------------------- corruptions */

static void test_base64(void)
{
    static const char *const v[][2] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},          {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}, {"Man", "TWFu"},
        {"Ma", "TWE="},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char *b = dc_base64(v[i][0], strlen(v[i][0]));
        ok(str_eq(b, v[i][1]), "base64 '%s' is '%s' (got '%s')", v[i][0], v[i][1], b ? b : "(null)");
        free(b);
    }
    unsigned char bytes[3] = {0xFB, 0xFF, 0x00};
    char *b = dc_base64(bytes, 3);
    ok(str_eq(b, "+/8A"), "base64 of FB FF 00 is '+/8A' (the last two letters, a zero byte)");
    free(b);

    /* h é l l o = 68 C3 A9 6C 6C 6F: 011010 001100 001110 101001 | 011011
     * 000110 110001 101111 = a M O p b G x v, cut to 5 codepoints */
    b = dc_base64_span("h\xc3\xa9llo");
    ok(str_eq(b, "aMOpb"), "base64 span of 'h\xc3\xa9llo' is 'aMOpb' (got '%s')", b ? b : "(null)");
    free(b);
}

static void test_reverse(void)
{
    char *s = dc_reverse("h\xc3\xa9llo");
    ok(str_eq(s, "oll\xc3\xa9h") && dc_utf8_valid(s), "reverse of h\xc3\xa9llo is oll\xc3\xa9h");
    free(s);
    s = dc_reverse("a\xf0\x9f\x98\x80" "b \xe2\x80\x94!");
    ok(str_eq(s, "!\xe2\x80\x94 b\xf0\x9f\x98\x80" "a"), "4- and 3-byte characters reverse whole");
    free(s);
    s = dc_reverse("");
    ok(str_eq(s, ""), "reverse of '' is ''");
    free(s);
}

static void test_cipher(void)
{
    const char *alpha = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123,.!? \xc3\xa9";
    int bijective = 1, cased = 1, others = 1, moved = 1, same = 1, fixed = 0;
    int hits[26] = {0};   /* hits[i]: seeds that sent 'a' to 'a' + i */
    for (unsigned long seed = 1; seed <= 2000; seed++) {
        gsl_rng *r = rng(seed);
        char *c = dc_cipher(alpha, r);
        gsl_rng_set(r, seed);
        char *d = dc_cipher(alpha, r);
        same &= str_eq(c, d);
        int seen[26] = {0}, identity = 1;
        for (int i = 0; i < 26; i++) {
            int k = c[i] - 'a';
            if (k < 0 || k >= 26 || seen[k]++)
                bijective = 0;
            cased &= c[27 + i] == c[i] - 'a' + 'A';
            identity &= c[i] == 'a' + i;
            fixed += c[i] == 'a' + i;
        }
        if (c[0] >= 'a' && c[0] <= 'z')
            hits[c[0] - 'a']++;
        others &= strcmp(c + 53, alpha + 53) == 0 && c[26] == ' ';
        moved &= !identity;
        free(c);
        free(d);
        gsl_rng_free(r);
    }
    ok(bijective, "2000 seeds: the cipher maps a..z onto a..z, a bijection");
    ok(cased, "the same permutation applies to uppercase");
    ok(others, "spaces, digits, punctuation and \xc3\xa9 are unchanged");
    ok(moved, "the permutation is never the identity");
    ok(same, "a seed gives the same cipher twice");
    int all = 1;
    for (int i = 0; i < 26; i++)
        all &= hits[i] > 0;
    ok(all && fixed > 0, "'a' reached every letter over the seeds; fixed points do occur (%d)", fixed);

    gsl_rng *r = rng(7);
    char *c = dc_cipher("abc ABC", r);
    ok(c && c[0] - 'a' == c[4] - 'A' && c[1] - 'a' == c[5] - 'A' && c[2] - 'a' == c[6] - 'A' &&
           c[0] != c[1] && c[1] != c[2] && c[0] != c[2] && c[3] == ' ',
       "'abc ABC' -> '%s': abc and ABC map alike to three letters", c ? c : "(null)");
    free(c);
    gsl_rng_free(r);
}

static void test_shuffle(void)
{
    const char *three = "the quick fox";
    char *want = word_multiset(three);
    int perms = 1, lengths = 1, changed = 1, same = 1, order[6] = {0};
    static const char *const all6[6] = {"the quick fox", "the fox quick", "quick the fox",
                                        "quick fox the", "fox the quick", "fox quick the"};
    for (unsigned long seed = 1; seed <= 300; seed++) {
        gsl_rng *r = rng(seed);
        char *s = dc_shuffle_words(three, r);
        gsl_rng_set(r, seed);
        char *t = dc_shuffle_words(three, r);
        char *got = word_multiset(s);
        perms &= str_eq(got, want);
        lengths &= strlen(s) == strlen(three);
        changed &= strcmp(s, three) != 0;
        same &= str_eq(s, t);
        for (int i = 0; i < 6; i++)
            order[i] += str_eq(s, all6[i]);
        free(got);
        free(s);
        free(t);
        gsl_rng_free(r);
    }
    ok(perms && lengths, "300 seeds: a permutation of the 3 words, the same length");
    ok(changed && order[0] == 0, "the input order itself is never returned");
    ok(order[1] && order[2] && order[3] && order[4] && order[5],
       "all 5 other orders occur (%d %d %d %d %d)", order[1], order[2], order[3], order[4], order[5]);
    ok(same, "a seed gives the same shuffle twice");
    free(want);

    gsl_rng *r = rng(11);
    char *s = dc_shuffle_words(" a, bb  ccc. ", r);
    ok(s && strlen(s) == 13 && s[0] == ' ' && s[strlen(s) - 1] == ' ' && strstr(s, "  ") &&
           strstr(s, "a,") && strstr(s, "ccc.") && strstr(s, "bb"),
       "blanks stay in place, punctuation stays on its word: '%s'", s ? s : "(null)");
    free(s);
    s = dc_shuffle_words("word", r);
    ok(str_eq(s, "word"), "a single word is returned as it is");
    free(s);
    s = dc_shuffle_words("na na na", r);
    ok(str_eq(s, "na na na"), "equal words: the same text (after the redraws give up)");
    free(s);
    gsl_rng_free(r);
}

/* the number of words (split at single spaces) in which a and b differ; -1
 * if their word counts differ */
static int words_changed(const char *a, const char *b)
{
    char *x = malloc(strlen(a) + 1), *y = malloc(strlen(b) + 1), *sx, *sy;
    strcpy(x, a);
    strcpy(y, b);
    int n = 0;
    char *p = strtok_r(x, " ", &sx), *q = strtok_r(y, " ", &sy);
    for (; p && q; p = strtok_r(NULL, " ", &sx), q = strtok_r(NULL, " ", &sy))
        n += strcmp(p, q) != 0;
    if (p || q)
        n = -1;
    free(x);
    free(y);
    return n;
}

static void test_garbage(void)
{
    const char *ten = "one two three four five six seven eight nine ten";
    static const double fr[] = {0, 0.1, 0.25, 0.3, 0.5, 1};
    static const int want[] = {0, 1, 3, 3, 5, 10};   /* round(f*10), 2.5 -> 3 */
    for (int i = 0; i < 6; i++) {
        int exact = 1, lowercase = 1;
        for (unsigned long seed = 1; seed <= 100; seed++) {
            gsl_rng *r = rng(seed);
            char *g = dc_garbage_words(ten, fr[i], r);
            exact &= words_changed(ten, g) == want[i] && strlen(g) == strlen(ten);
            for (const char *p = g; *p; p++)
                lowercase &= (*p >= 'a' && *p <= 'z') || *p == ' ';
            free(g);
            gsl_rng_free(r);
        }
        ok(exact && lowercase, "garbage at %.2f of 10 words replaces exactly %d, same lengths",
           fr[i], want[i]);
    }

    gsl_rng *r = rng(3);
    char *g = dc_garbage_words("\"Hello,\" she said \xe2\x80\x94 caf\xc3\xa9!", 1, r);
    /* "Hello," keeps its quotes and comma, the dash is no word, café (4
     * codepoints, 5 bytes) becomes 4 letters before its '!' */
    int shape = g && strlen(g) == 27 && dc_utf8_len(g) == 25 && g[0] == '"' && g[6] == ',' &&
                g[7] == '"' && strstr(g, " \xe2\x80\x94 ") && g[26] == '!';
    ok(shape, "punctuation around a core is kept, '\xe2\x80\x94' is not a word: '%s'",
       g ? g : "(null)");
    ok(g && words_changed("\"Hello,\" she said \xe2\x80\x94 caf\xc3\xa9!", g) == 4,
       "all 4 words with letters changed at fraction 1");
    free(g);
    g = dc_garbage_words("a b", -0.1, r);
    ok(g == NULL, "a fraction below 0 is refused");
    g = dc_garbage_words("a b", 1.5, r);
    ok(g == NULL, "a fraction above 1 is refused");
    g = dc_garbage_words("a a a a", 1, r);
    ok(g && words_changed("a a a a", g) == 4, "a replacement never equals the word: '%s'",
       g ? g : "(null)");
    free(g);
    gsl_rng_set(r, 5);
    char *g1 = dc_garbage_words(ten, 0.3, r);
    gsl_rng_set(r, 5);
    char *g2 = dc_garbage_words(ten, 0.3, r);
    ok(str_eq(g1, g2), "a seed gives the same garbage twice");
    free(g1);
    free(g2);
    gsl_rng_free(r);
}

static void test_tokens(void)
{
    static const char *const vocab[] = {"", " the", "cat", "\xc3\xa9", "\n", "\xff", "\t",
                                        "\xc2\x85", NULL, "s"};
    gsl_rng *r = rng(21);
    int fine = 1, all = 1;
    int seen_space = 0, seen_e = 0, seen_s = 0;
    for (int L = 0; L <= 70; L += 7) {
        char *t = dc_random_tokens(vocab, 10, L, r);
        fine &= t && dc_utf8_len(t) == L && dc_utf8_valid(t);
        for (const char *p = t; p && *p; p++) {
            /* only letters of the usable pieces: " the", "cat", "é", "s" */
            all &= strchr(" thecas\xc3\xa9", *p) != NULL;
            seen_space |= *p == ' ';
            seen_s |= *p == 's';
            seen_e |= (unsigned char)*p == 0xC3;
        }
        free(t);
    }
    ok(fine, "random tokens: exactly L codepoints of valid UTF-8 for L = 0, 7, .., 70");
    ok(all && seen_space && seen_e && seen_s,
       "built only from the usable pieces (no empty, newline, tab, 0xFF, U+0085, NULL)");
    static const char *const useless[] = {"", "\n", "\xff"};
    ok(dc_random_tokens(useless, 3, 10, r) == NULL, "no usable piece: NULL");
    gsl_rng_set(r, 9);
    char *a = dc_random_tokens(vocab, 10, 40, r);
    gsl_rng_set(r, 9);
    char *b = dc_random_tokens(vocab, 10, 40, r);
    ok(str_eq(a, b), "a seed gives the same tokens twice");
    free(a);
    free(b);
    gsl_rng_free(r);
}

/* ---------------------------------------------------------------- spans */

/* paragraphs of words w0000, w0001, ... (each unique) so that every span can
 * be found again; lens[] gives each paragraph's word count */
static char *numbered_text(const int *lens, int n, int *nwords)
{
    size_t cap = 64;
    for (int i = 0; i < n; i++)
        cap += (size_t)lens[i] * 6 + 1;
    char *t = malloc(cap), *p = t;
    int w = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < lens[i]; j++)
            p += sprintf(p, j ? " w%04d" : "w%04d", w++);
        *p++ = '\n';
    }
    *p = '\0';
    *nwords = w;
    return t;
}

static void test_spans(void)
{
    /* 20 paragraphs of 5..43 words (30..258 codepoints), a short one of 3
     * words (17 codepoints) in the middle */
    int lens[21], nwords;
    for (int i = 0; i < 21; i++)
        lens[i] = 5 + (i * 7) % 39;
    lens[10] = 3;
    char *text = numbered_text(lens, 21, &nwords);
    size_t n = strlen(text);
    const char *shortpar = strstr(text, "\n") + 1;   /* found below */
    for (int i = 0; i < 9; i++)
        shortpar = strchr(shortpar, '\n') + 1;
    /* shortpar: the start of paragraph 10 */

    static const int64_t Ls[] = {20, 32, 64};
    for (int li = 0; li < 3; li++) {
        int64_t L = Ls[li];
        gsl_rng *r = rng(100 + (unsigned long)li);
        char **sp;
        int64_t k = dc_spans(text, n, L, 1000, r, &sp);
        int exact = 1, wordstart = 1, inside = 1, overlap = 0, noshort = 1, notrail = 1;
        size_t *at = calloc((size_t)(k > 0 ? k : 1), sizeof *at);
        for (int64_t i = 0; i < k; i++) {
            exact &= dc_utf8_len(sp[i]) == L && (int64_t)strlen(sp[i]) == L;
            const char *f = strstr(text, sp[i]);
            inside &= f != NULL && strchr(sp[i], '\n') == NULL;
            wordstart &= f && sp[i][0] == 'w' && (f == text || f[-1] == ' ' || f[-1] == '\n');
            notrail &= sp[i][L - 1] != ' ';
            noshort &= !(f && f >= shortpar && f < strchr(shortpar, '\n'));
            at[i] = f ? (size_t)(f - text) : 0;
            for (int64_t j = 0; j < i; j++)
                overlap |= at[j] + (size_t)L > at[i];   /* in text order */
        }
        ok(k > 0 && exact, "L=%d: %d spans, each exactly L codepoints", (int)L, (int)k);
        ok(inside && wordstart && notrail,
           "L=%d: each starts at a word, stays in its paragraph, ends in no space", (int)L);
        ok(!overlap && noshort, "L=%d: in text order, no overlaps, none from the short paragraph",
           (int)L);
        free(at);
        dc_strv_free(sp, k);
        gsl_rng_free(r);
    }

    /* a few spans out of many: from all over the text, the same for a seed */
    gsl_rng *r = rng(5);
    char **a, **b;
    int64_t ka = dc_spans(text, n, 20, 6, r, &a);
    gsl_rng_set(r, 5);
    int64_t kb = dc_spans(text, n, 20, 6, r, &b);
    int same = ka == kb, first = 0, second = 0;
    for (int64_t i = 0; i < ka && same; i++) {
        same &= str_eq(a[i], b[i]);
        if (strstr(text, a[i]) < text + n / 2)
            first++;
        else
            second++;
    }
    ok(ka == 6 && same, "max 6: 6 spans, the same twice for a seed");
    ok(first > 0 && second > 0, "they come from both halves of the text (%d, %d)", first, second);
    dc_strv_free(a, ka);
    dc_strv_free(b, kb);

    /* whitespace squeezed; a paragraph of exactly L codepoints is one span */
    const char *messy = "  alpha\t beta   gamma  \n\n\r\nx\n";
    int64_t k = dc_spans(messy, strlen(messy), 16, 10, r, &a);
    ok(k == 1 && str_eq(a[0], "alpha beta gamma"), "tabs and runs of spaces squeezed: '%s'",
       k == 1 ? a[0] : "?");
    dc_strv_free(a, k);
    k = dc_spans(messy, strlen(messy), 17, 10, r, &a);
    ok(k == 0 && a == NULL, "a paragraph shorter than L gives no span");
    /* 11 codepoints in 15 bytes; the two places a span of 6 may start
     * overlap, so one is kept */
    const char *ete = "\xc3\xa9t\xc3\xa9 d\xc3\xa9j\xc3\xa0 vu";
    k = dc_spans(ete, strlen(ete), 6, 10, r, &a);
    ok(k == 1 && (str_eq(a[0], "\xc3\xa9t\xc3\xa9 d\xc3\xa9") || str_eq(a[0], "d\xc3\xa9j\xc3\xa0 v")),
       "lengths in codepoints: '%s' is '\xc3\xa9t\xc3\xa9 d\xc3\xa9' or 'd\xc3\xa9j\xc3\xa0 v'", k == 1 ? a[0] : "?");
    dc_strv_free(a, k);
    ok(dc_spans(text, n, 0, 5, r, &a) == -1 && a == NULL, "L = 0 is refused");
    ok(dc_spans(text, n, 20, 0, r, &a) == 0 && a == NULL, "max = 0 gives none");
    gsl_rng_free(r);

    /* every corruption of every span: exactly L codepoints of valid UTF-8 */
    static const char *const vocab[] = {" the", " of", "ing", "\xc3\xa9t\xc3\xa9", " \xe2\x80\x94", "s"};
    struct dc_params p = {vocab, 6, 0.3};
    const char *prose =
        "The caf\xc3\xa9 on the corner \xe2\x80\x94 \xe2\x80\x9cLe Petit\xe2\x80\x9d \xe2\x80\x94 "
        "had opened at six, as it always did, na\xc3\xafvely hoping for customers who never came "
        "before nine. Its owner, a patient man, swept the floor twice.\n"
        "Short one.\n"
        "\xc3\x9c" "ber alles: the \xc3\xa9t\xc3\xa9 of 1961 was hot, and everyone \xe2\x80\x94 even "
        "the dogs \xe2\x80\x94 slept through the afternoons in the shade of the plane trees.\n";
    int good = 1, checked = 0;
    for (int64_t L = 32; L <= 128; L *= 2) {
        r = rng((unsigned long)L);
        k = dc_spans(prose, strlen(prose), L, 100, r, &a);
        for (int64_t i = 0; i < k; i++)
            for (int kind = 0; kind < DC_NKINDS; kind++) {
                char *c = dc_corrupt((dc_kind)kind, a[i], &p, r);
                int fine = c && dc_utf8_len(c) == L && dc_utf8_valid(c);
                if (!fine)
                    diag("%s of '%s' gave '%s'", dc_kind_name((dc_kind)kind), a[i], c ? c : "(null)");
                good &= fine;
                checked++;
                free(c);
            }
        dc_strv_free(a, k);
        gsl_rng_free(r);
    }
    ok(good && checked > 6 * 6, "%d corruptions of spans of 32, 64, 128: exactly L valid codepoints",
       checked);
    ok(str_eq(dc_kind_name(DC_SHUFFLE), "shuffle") && str_eq(dc_kind_name(DC_GARBAGE), "garbage") &&
           dc_kind_name(DC_NKINDS) == NULL,
       "kind names");
    free(text);
}

/* ---------------------------------------------------------------- AUROC */

static double auroc_pairs(const double *pos, int np, const double *neg, int nn)
{
    double s = 0;
    for (int i = 0; i < np; i++)
        for (int j = 0; j < nn; j++)
            s += pos[i] > neg[j] ? 1 : pos[i] == neg[j] ? 0.5 : 0;
    return s / ((double)np * nn);
}

static void test_auroc(void)
{
    const double a34[] = {3, 4}, a12[] = {1, 2}, a123[] = {1, 2, 3}, a2[] = {2};
    ok(dc_auroc(a34, 2, a12, 2) == 1, "auroc {3,4} vs {1,2} = 1");
    ok(dc_auroc(a12, 2, a34, 2) == 0, "auroc {1,2} vs {3,4} = 0");
    ok(dc_auroc(a12, 2, a12, 2) == 0.5, "auroc of identical sets = 0.5");
    ok(dc_auroc(a123, 3, a2, 1) == 0.5, "auroc {1,2,3} vs {2} = (0 + 0.5 + 1)/3 = 0.5");
    const double p3[] = {0.5, 0.9, 0.1}, n2[] = {0.2, 0.4};
    ok(fabs(dc_auroc(p3, 3, n2, 2) - 4.0 / 6) < 1e-15, "auroc {.5,.9,.1} vs {.2,.4} = 4/6");
    const double p22[] = {2, 2}, n21[] = {2, 1};
    ok(dc_auroc(p22, 2, n21, 2) == 0.75, "auroc {2,2} vs {2,1} = (0.5+1+0.5+1)/4 = 0.75");
    const double nanv[] = {1, NAN};
    ok(isnan(dc_auroc(a12, 0, a34, 2)) && isnan(dc_auroc(a12, 2, a34, 0)) &&
           isnan(dc_auroc(nanv, 2, a34, 2)),
       "no positives, no negatives, or a NaN score: NaN");

    /* against counting all pairs, with many ties (scores on a grid of 20) */
    gsl_rng *r = rng(77);
    int np = 300, nn = 500;
    double *pos = malloc((size_t)np * sizeof *pos), *neg = malloc((size_t)nn * sizeof *neg);
    for (int i = 0; i < np; i++)
        pos[i] = floor(gsl_rng_uniform(r) * 20) + 3;
    for (int i = 0; i < nn; i++)
        neg[i] = floor(gsl_rng_uniform(r) * 20);
    double want = auroc_pairs(pos, np, neg, nn), got = dc_auroc(pos, np, neg, nn);
    ok(fabs(got - want) < 1e-12, "300 vs 500 tied scores: %.12f, counting pairs %.12f", got, want);
    free(pos);
    free(neg);
    gsl_rng_free(r);
}

int main(void)
{
    gsl_set_error_handler_off();
    test_utf8();
    test_base64();
    test_reverse();
    test_cipher();
    test_shuffle();
    test_garbage();
    test_tokens();
    test_spans();
    test_auroc();
    return done_testing();
}
