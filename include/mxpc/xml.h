/* Reading and writing the small XML documents of S3 and STS (expat): one
 * walker that calls back for every element as it ends, a helper that copies
 * the text of named elements, and escaping for element text. */
#ifndef MXPC_XML_H
#define MXPC_XML_H

#include <stddef.h>

struct mxpc_buf;

/* Called for every element as it ends, with its text (the character data
 * after its last child) and the name of the element around it ("" at the
 * top). */
typedef void (*mxpc_xml_element_fn)(void *ud, const char *name, const char *parent, const char *text);

/* Walks the document; 0, or -1 if it is not well-formed XML. */
int mxpc_xml_each(const char *xml, size_t len, mxpc_xml_element_fn fn, void *ud);

/* Copies the text of up to three named elements into fixed buffers; each
 * end of the element named `record` (if set) counts, and calls on_record,
 * which may reset the fields for the next record. Pass it as the ud of
 * mxpc_xml_capture_element. */
struct mxpc_xml_capture {
    const char *names[3];
    char *dest[3];
    size_t size[3];
    const char *record;
    void (*on_record)(struct mxpc_xml_capture *c);
    void *ud;
    int records; /* how many `record` elements ended */
};
void mxpc_xml_capture_element(void *ud, const char *name, const char *parent, const char *text);

/* Appends text as XML character data; -1 if it holds a character XML 1.0
 * cannot carry (control characters other than tab, newline, return). */
int mxpc_xml_text(struct mxpc_buf *b, const char *text);

#endif
