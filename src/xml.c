/* The XML walker of S3 and STS answers on expat. See include/mxpc/xml.h. */
#include "mxpc/xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#include "mxpc/buf.h"

struct walk {
    struct mxpc_buf text;
    struct mxpc_buf names; /* the open elements' names, each NUL-terminated */
    size_t *starts;        /* where each open element's name begins in names */
    size_t depth, cap;
    mxpc_xml_element_fn fn;
    void *ud;
};

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    (void)attrs;
    struct walk *w = ud;
    w->text.len = 0;
    mxpc_buf_puts(&w->text, "");
    if (w->depth == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        w->starts = realloc(w->starts, w->cap * sizeof *w->starts);
        if (!w->starts)
            abort();
    }
    w->starts[w->depth++] = w->names.len;
    mxpc_buf_append(&w->names, name, strlen(name) + 1);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    struct walk *w = ud;
    const char *parent = w->depth >= 2 ? w->names.data + w->starts[w->depth - 2] : "";
    w->fn(w->ud, name, parent, w->text.data ? w->text.data : "");
    if (w->depth > 0)
        w->names.len = w->starts[--w->depth];
    w->text.len = 0;
    if (w->text.data)
        w->text.data[0] = '\0';
}

static void XMLCALL on_chars(void *ud, const XML_Char *s, int len)
{
    struct walk *w = ud;
    mxpc_buf_append(&w->text, s, (size_t)len);
}

int mxpc_xml_each(const char *xml, size_t len, mxpc_xml_element_fn fn, void *ud)
{
    XML_Parser p = XML_ParserCreate(NULL);
    if (!p)
        abort();
    struct walk w = {MXPC_BUF_INIT, MXPC_BUF_INIT, NULL, 0, 0, fn, ud};
    XML_SetUserData(p, &w);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_chars);
    int ok = XML_Parse(p, xml ? xml : "", (int)len, 1) == XML_STATUS_OK;
    XML_ParserFree(p);
    mxpc_buf_free(&w.text);
    mxpc_buf_free(&w.names);
    free(w.starts);
    return ok ? 0 : -1;
}

void mxpc_xml_capture_element(void *ud, const char *name, const char *parent, const char *text)
{
    (void)parent;
    struct mxpc_xml_capture *c = ud;
    for (int i = 0; i < 3 && c->names[i]; i++)
        if (strcmp(name, c->names[i]) == 0)
            snprintf(c->dest[i], c->size[i], "%s", text);
    if (c->record && strcmp(name, c->record) == 0) {
        c->records++;
        if (c->on_record)
            c->on_record(c);
    }
}

int mxpc_xml_text(struct mxpc_buf *b, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        switch (*p) {
        case '&': mxpc_buf_puts(b, "&amp;"); break;
        case '<': mxpc_buf_puts(b, "&lt;"); break;
        case '>': mxpc_buf_puts(b, "&gt;"); break;
        case '"': mxpc_buf_puts(b, "&quot;"); break;
        case '\'': mxpc_buf_puts(b, "&apos;"); break;
        case '\r': mxpc_buf_puts(b, "&#13;"); break;
        default:
            if (*p < 0x20 && *p != '\t' && *p != '\n')
                return -1;
            mxpc_buf_putc(b, (char)*p);
        }
    }
    return 0;
}
