#ifndef HEMSTREAM_CCURLSHIM_H
#define HEMSTREAM_CCURLSHIM_H

#include <curl/curl.h>

/* Typed, non-variadic wrappers: Swift cannot call curl_easy_setopt/getinfo (variadic C). */
CURLcode hs_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode hs_setopt_str(CURL *handle, CURLoption option, const char *value);
CURLcode hs_setopt_ptr(CURL *handle, CURLoption option, void *value);
CURLcode hs_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode hs_setopt_off(CURL *handle, CURLoption option, curl_off_t value);

typedef size_t (*hs_data_callback)(char *data, size_t size, size_t count, void *context);
CURLcode hs_setopt_writefn(CURL *handle, hs_data_callback fn, void *context);
CURLcode hs_setopt_headerfn(CURL *handle, hs_data_callback fn, void *context);
CURLcode hs_setopt_readfn(CURL *handle, hs_data_callback fn, void *context);

CURLMcode hs_multi_setopt_long(CURLM *multi, CURLMoption option, long value);

CURLcode hs_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode hs_getinfo_double(CURL *handle, CURLINFO info, double *value);

/* An eventfd to wake a poll loop: cheaper than curl_multi_wakeup's socket pair. */
int hs_eventfd_create(void);
void hs_eventfd_signal(int fd);
void hs_eventfd_drain(int fd);

#endif
