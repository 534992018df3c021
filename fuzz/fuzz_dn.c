/*
 * fuzz_dn.c -- fuzz target of the RFC 4514 DN parser.
 *
 * Input: DN text.  certauthz_dn_parse() must fail with a reason, or give a
 * DN whose RFC 4514 text parses back to an equal DN (same key, same RDN
 * count, same text again), and whose key does not depend on anything but
 * the text (a second parse gives the same key).  The DN is also used the
 * way the map uses it: as a dn: selector (same key) and a dn~regex subject.
 */
#include "fuzz_common.h"

/* 1 when every attribute type of the text that starts with a digit is an
 * RFC 4514 numericoid: number 1*("." number), number = "0" or a digit 1-9
 * followed by digits. */
static int numeric_types_strict(const char *s, size_t len)
{
    size_t i = 0;
    for (;;) {
        while (i < len && s[i] == ' ')
            i++;
        size_t start = i;
        while (i < len && s[i] != '=' && s[i] != ' ')
            i++;
        if (start < i && s[start] >= '0' && s[start] <= '9') {
            int digits = 0, lead0 = 0;
            for (size_t k = start; k < i; k++) {
                if (s[k] == '.') {
                    if (!digits)
                        return 0;
                    digits = 0;
                }
                else {
                    if (digits == 1 && lead0)
                        return 0;
                    lead0 = digits == 0 && s[k] == '0';
                    digits++;
                }
            }
            if (!digits)
                return 0;
        }
        /* skip the value: up to an unescaped ',' or '+' */
        while (i < len && s[i] != ',' && s[i] != '+') {
            if (s[i] == '\\')
                i++;
            i++;
        }
        if (i >= len)
            return 1;
        i++;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = input_pool();
    const char *text = (const char *)data;
    certauthz_dn_t *dn = NULL, *dn2 = NULL;
    const char *why = NULL, *why2 = NULL;
    apr_status_t rv, rv2;

    rv = certauthz_dn_parse(&dn, text, size, &why, p);
    rv2 = certauthz_dn_parse(&dn2, text, size, &why2, p);
    CHECK(rv == rv2, "two parses of the same text disagree");
    if (rv != APR_SUCCESS) {
        CHECK(rv == CERTAUTHZ_EBADINPUT, "parse failed with status %d", rv);
        CHECK(dn == NULL, "failure but a DN returned");
        CHECK(why && *why, "failure without a reason");
        /* reasons end up in httpd's error log: no control characters
         * (bytes of the input that are not UTF-8 may appear: the input is
         * not UTF-8 either) */
        CHECK(!has_ctl(why, strlen(why)), "control character in reason: %s",
              show(why, strlen(why), p));
        CHECK(why2 && !strcmp(why, why2), "reasons differ: %s / %s", why,
              why2 ? why2 : "(null)");
        input_done(p);
        return 0;
    }
    CHECK(dn && dn2, "success without a DN");

    apr_size_t klen, klen2;
    const char *key = certauthz_dn_key(dn, &klen);
    const char *key2 = certauthz_dn_key(dn2, &klen2);
    CHECK(klen == klen2 && !memcmp(key, key2, klen)
              && certauthz_dn_equal(dn, dn2),
          "key not deterministic: %s / %s", show(key, klen, p),
          show(key2, klen2, p));
    CHECK(!strcmp(certauthz_dn_text(dn), certauthz_dn_text(dn2)),
          "text not deterministic");
    CHECK(certauthz_dn_same_issuer(dn, dn2), "issuer key not deterministic");

    check_dn_roundtrip(dn, "DN", p);

    /* a NUL byte is never accepted (found: DN-NUL-IN-TYPE, "CN\0x=a" was
     * CN=a before 38de522) */
    CHECK(!memchr(text, '\0', size), "DN with a NUL byte accepted: %s",
          show(text, size, p));
    CHECK(!memchr(key, '\0', klen), "NUL byte in a DN value: %s",
          show(text, size, p));
    /* numeric OIDs as RFC 4512 says (found: DN-LENIENT-OID, OpenSSL's
     * OBJ_txt2obj made "2.5.4.3.=x" CN=x and "2.5.4..3" 2.5.4.0.3) */
    CHECK(numeric_types_strict(text, size),
          "malformed numeric OID accepted: %s", show(text, size, p));

    /* as a map selector: dn:TEXT compiles to the same key */
    certauthz_selector_t sel;
    const char *reason = NULL;
    char *seltext = apr_palloc(p, size + 3);
    memcpy(seltext, "dn:", 3);
    memcpy(seltext + 3, text, size);
    /* (a map line is UTF-8 without NUL; escapes may make a value UTF-8
     * that the text is not, e.g. \C3 followed by a raw 0xAA byte) */
    if (size > 0 && certauthz_utf8_valid(text, size)) {
        CHECK(certauthz_selector_parse(&sel, seltext, size + 3, &reason, p)
                  == APR_SUCCESS,
              "DN parses but dn:DN is not a selector: %s",
              reason ? reason : "");
        CHECK(sel.type == CERTAUTHZ_DN && sel.kind == CERTAUTHZ_SEL_EXACT
                  && sel.len == klen && !memcmp(sel.value, key, klen),
              "dn: selector key differs from the DN key");
        check_selector_roundtrip(&sel, p);

        /* the selector matches a dn fact made of this DN */
        certauthz_value_t v = {certauthz_dn_text(dn), key, klen};
        CHECK(certauthz_selector_match_value(&sel, &v, NULL) == 1,
              "dn: selector does not match its own DN");
    }
    input_done(p);
    return 0;
}
