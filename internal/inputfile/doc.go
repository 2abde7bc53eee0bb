// Package inputfile reads the files a user names as input to a build — the
// recipe, the ignore file, secret sources — with a size limit and without
// ever blocking: anything that is not a regular file (a FIFO, a device, a
// socket, a directory) is refused before it is read, and a file larger than
// the limit is refused without being read whole.
//
// Input: a path and Options (the limit, and what the file is, for
// messages). Output: the file's bytes, or an error that names the file and
// says what is wrong with it.
package inputfile
