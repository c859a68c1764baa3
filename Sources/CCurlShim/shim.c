#include "CCurlShim.h"

CURLcode hs_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
CURLcode hs_setopt_str(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
CURLcode hs_setopt_ptr(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
CURLcode hs_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
CURLcode hs_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }

CURLcode hs_setopt_writefn(CURL *h, hs_data_callback fn, void *ctx) {
    CURLcode rc = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fn);
    return rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_WRITEDATA, ctx);
}
CURLcode hs_setopt_headerfn(CURL *h, hs_data_callback fn, void *ctx) {
    CURLcode rc = curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, fn);
    return rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_HEADERDATA, ctx);
}
CURLcode hs_setopt_readfn(CURL *h, hs_data_callback fn, void *ctx) {
    CURLcode rc = curl_easy_setopt(h, CURLOPT_READFUNCTION, fn);
    return rc != CURLE_OK ? rc : curl_easy_setopt(h, CURLOPT_READDATA, ctx);
}

CURLcode hs_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
CURLcode hs_getinfo_double(CURL *h, CURLINFO i, double *v) { return curl_easy_getinfo(h, i, v); }

CURLMcode hs_multi_setopt_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }

#include <sys/eventfd.h>
#include <unistd.h>
#include <stdint.h>

int hs_eventfd_create(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
void hs_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t rc = write(fd, &one, sizeof one);
    (void)rc; /* a full counter is still readable: the loop wakes either way */
}
void hs_eventfd_drain(int fd) {
    uint64_t value;
    ssize_t rc = read(fd, &value, sizeof value);
    (void)rc;
}
